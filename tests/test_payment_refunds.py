# ruff: noqa: F811  (the fixtures of test_payments, imported by name)
"""Refunds and disputes land in the ledger (issue 15): the refund route through each gateway's
own refund, Stripe's and Braintree's refund and dispute webhooks, and what they do to the
gig's paidAmount."""

from __future__ import annotations

from typing import Any

from hub.payments.views import PaymentRefunded, PaymentUpdated
from tests.support import Account, Api, HubNode, Phone
from tests.support.gateways import FakeGateways, braintree_webhook
from tests.test_payment_money import gig_money
from tests.test_payments import (  # noqa: F401  (fixtures)
    fakes,
    pay,
    pay_hub,
    post_raw,
    post_stripe_event,
    seed_gig,
)


async def refund(
    api: Api, account: Account, payment_id: str, key: str, amount: int | None = None
) -> tuple[int, Any]:
    body = {} if amount is None else {"amount": amount}
    return await api.request(
        "POST",
        f"/api/payments/{payment_id}/refund",
        token=account.access_token,
        json=body,
        headers={"Idempotency-Key": key},
    )


async def stripe_paid(
    node: HubNode, api: Api, fakes: FakeGateways, payer: Account, gig_id: str
) -> tuple[str, str]:
    """A Stripe payment of the whole outstanding amount, succeeded by its webhook."""
    status, body = await pay(api, payer, gig_id, key=f"pay-{gig_id}", amount=None)
    assert status == 201, body
    intent_id = body["payment"]["transactionId"]
    fakes.stripe.intents[intent_id]["status"] = "succeeded"
    assert (await post_stripe_event(node, fakes.stripe.succeeded(intent_id)))[0] == 200
    return body["payment"]["id"], intent_id


async def test_a_full_stripe_refund_by_the_route_refunds_once(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner, drummer = await api.register_many("owner", "drummer")
    _, gig_id = await seed_gig(test_env.database_url, owner, members=(drummer,), fee=2000)
    payment_id, intent_id = await stripe_paid(pay_hub, api, fakes, drummer, gig_id)
    assert await gig_money(api, owner, gig_id) == (2000, 0)
    status, body = await refund(api, drummer, payment_id, "r1")  # a plain member
    assert status == 403 and body["error"]["code"] == "forbidden", body
    stranger = await api.register("stranger")
    status, missing = await refund(api, stranger, payment_id, "r1")
    assert status == 404 and missing["error"]["code"] == "not_found"
    assert await refund(api, stranger, "00000000-0000-4000-8000-000000000000", "r1") == (
        404,
        missing,
    )
    status, body = await refund(api, owner, payment_id, "r1")
    assert status == 200, body
    payment = PaymentRefunded.model_validate(body).payment
    assert (payment.status, payment.refundedAmount) == ("refunded", 2000)
    assert await refund(api, owner, payment_id, "r1") == (status, body)  # the key keeps it
    [stripe_refund] = fakes.stripe.refunds
    assert stripe_refund["amount"] == 2000 and stripe_refund["payment_intent"] == intent_id
    status, body = await refund(api, owner, payment_id, "r2")
    assert status == 409 and body["error"]["details"] == {"refundable": 0}, body
    # Stripe's own webhook for the same refund changes nothing.
    status, body = await post_stripe_event(pay_hub, fakes.stripe.charge_refunded(intent_id))
    assert status == 200
    assert await gig_money(api, owner, gig_id) == (0, 2000)  # refunded counts against it


async def test_a_partial_braintree_refund_by_the_route(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner, admin = await api.register_many("owner", "admin")
    _, gig_id = await seed_gig(test_env.database_url, owner, admins=(admin,), fee=3000)
    status, body = await pay(api, owner, gig_id, method="paypal", key="pp", amount=None)
    assert status == 201 and body["payment"]["status"] == "succeeded", body
    payment_id, sale_id = body["payment"]["id"], body["payment"]["transactionId"]
    status, body = await refund(api, admin, payment_id, "part-unsettled", 1000)
    assert status == 409 and body["error"]["details"] == {"refundable": 3000}, body
    fakes.braintree.transactions[sale_id]["status"] = "settled"
    status, body = await refund(api, admin, payment_id, "too-much", 3001)
    assert status == 409 and body["error"]["details"] == {"refundable": 3000}, body
    status, body = await refund(api, admin, payment_id, "part", 1000)
    assert status == 200, body
    assert (body["payment"]["status"], body["payment"]["refundedAmount"]) == (
        "partially_refunded",
        1000,
    )
    assert fakes.braintree.refunded == {sale_id: ["10.00"]}
    assert await gig_money(api, owner, gig_id) == (2000, 1000)
    status, body = await refund(api, owner, payment_id, "rest")
    assert (status, body["payment"]["status"], body["payment"]["refundedAmount"]) == (
        200,
        "refunded",
        3000,
    )
    assert fakes.braintree.refunded == {sale_id: ["10.00", "20.00"]}


async def test_an_unsettled_braintree_sale_is_voided_in_full(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=3000)
    status, body = await pay(api, owner, gig_id, method="paypal", key="pp", amount=None)
    payment_id, sale_id = body["payment"]["id"], body["payment"]["transactionId"]
    status, body = await refund(api, owner, payment_id, "void")
    assert (status, body["payment"]["status"]) == (200, "refunded"), body
    assert fakes.braintree.voided == [sale_id] and fakes.braintree.refunded == {}


async def test_stripe_refund_webhooks_move_the_ledger_partially_then_fully(
    pay_hub, test_env, fakes
):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    phone = await Phone(owner).connect(pay_hub.url)
    try:
        _payment_id, intent_id = await stripe_paid(pay_hub, api, fakes, owner, gig_id)
        fakes.stripe.intents[intent_id]["amount_refunded"] = 500  # refunded in Stripe's dashboard
        assert (await post_stripe_event(pay_hub, fakes.stripe.charge_refunded(intent_id)))[0] == 200
        while True:
            pushed = PaymentUpdated.model_validate(await phone.next("payment:updated"))
            if pushed.payment.status not in ("pending", "succeeded"):
                break
        assert (pushed.payment.status, pushed.payment.refundedAmount) == ("partially_refunded", 500)
        assert await gig_money(api, owner, gig_id) == (1500, 500)
        fakes.stripe.intents[intent_id]["amount_refunded"] = 2000
        assert (await post_stripe_event(pay_hub, fakes.stripe.charge_refunded(intent_id)))[0] == 200
        pushed = PaymentUpdated.model_validate(await phone.next("payment:updated"))
        assert (pushed.payment.status, pushed.payment.refundedAmount) == ("refunded", 2000)
    finally:
        await phone.close()


async def test_stripe_disputes_hold_the_money_until_won_or_lost(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    payment_id, intent_id = await stripe_paid(pay_hub, api, fakes, owner, gig_id)

    async def status_after(kind: str, outcome: str) -> str:
        status, _ = await post_stripe_event(pay_hub, fakes.stripe.dispute(kind, intent_id, outcome))
        assert status == 200
        _, ledger = await api.request("GET", "/api/payments/ledger", token=owner.access_token)
        [payment] = [p for p in ledger["items"] if p["id"] == payment_id]
        return str(payment["status"])

    assert await status_after("charge.dispute.created", "needs_response") == "disputed"
    assert await gig_money(api, owner, gig_id) == (0, 2000)
    assert await status_after("charge.dispute.closed", "won") == "succeeded"
    assert await gig_money(api, owner, gig_id) == (2000, 0)
    assert await status_after("charge.dispute.created", "needs_response") == "disputed"
    assert await status_after("charge.dispute.closed", "lost") == "refunded"
    assert await gig_money(api, owner, gig_id) == (0, 2000)


async def test_braintree_disputes_opened_won_and_lost(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    _status, body = await pay(api, owner, gig_id, method="paypal", key="pp", amount=None)
    payment_id, sale_id = body["payment"]["id"], body["payment"]["transactionId"]

    async def status_after(kind: str) -> str:
        status, _ = await post_raw(
            pay_hub, "/api/payments/webhooks/braintree", braintree_webhook(kind, sale_id)
        )
        assert status == 200
        _, ledger = await api.request("GET", "/api/payments/ledger", token=owner.access_token)
        [payment] = [p for p in ledger["items"] if p["id"] == payment_id]
        return str(payment["status"])

    assert await status_after("dispute_opened") == "disputed"
    assert await gig_money(api, owner, gig_id) == (0, 2000)
    assert await status_after("dispute_won") == "succeeded"
    assert await gig_money(api, owner, gig_id) == (2000, 0)
    # (Braintree's sample of a second opening is the same signed payload: a replay.)
    assert await status_after("dispute_lost") == "refunded"
    assert await gig_money(api, owner, gig_id) == (0, 2000)
