# ruff: noqa: F811  (the fixtures of test_payments, imported by name)
"""Money that adds up (issue 15), over the wire against the fake gateways: the hub decides
every amount from what is outstanding on the gig, concurrent payments on two nodes never add
up to more than the fee, and a played gig is paid by itself when its payments cover it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio

from hub.bands.views import GigUpdatedEvent, GigView
from hub.payments.views import PaymentUncertain, PaymentUpdated
from tests.support import Account, Api, HubNode, Phone, start_hub_node
from tests.support.gateways import FakeGateways, Hold
from tests.test_payments import (  # noqa: F401  (fixtures)
    fakes,
    pay,
    pay_hub,
    pay_hubs,
    post_stripe_event,
    seed_gig,
)


async def gig_money(api: Api, account: Account, gig_id: str) -> tuple[int, int]:
    status, body = await api.request("GET", f"/api/gigs/{gig_id}", token=account.access_token)
    assert status == 200, body
    gig = GigView.model_validate(body)
    assert gig.paidAmount is not None and gig.outstanding is not None
    return gig.paidAmount, gig.outstanding


async def test_a_partial_then_the_whole_outstanding_amount(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner, drummer = await api.register_many("owner", "drummer")
    _, gig_id = await seed_gig(test_env.database_url, owner, members=(drummer,), fee=5000)
    assert await gig_money(api, drummer, gig_id) == (0, 5000)
    status, body = await pay(api, drummer, gig_id, method="paypal", key="part", amount=1200)
    assert status == 201 and body["payment"]["amount"] == 1200, body
    assert await gig_money(api, owner, gig_id) == (1200, 3800)
    status, body = await pay(api, owner, gig_id, key="rest", amount=None)  # Stripe: pending
    assert status == 201 and body["payment"]["amount"] == 3800, body
    assert await gig_money(api, owner, gig_id) == (1200, 0)  # pending counts
    assert [s["amount"] for s in fakes.braintree.sales] == ["12.00"]
    assert fakes.stripe.requests[0]["params"]["amount"] == "3800"


async def test_overpaying_and_paying_a_paid_gig_are_refused(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    status, body = await pay(api, owner, gig_id, method="paypal", key="too-much", amount=2001)
    assert status == 409 and body["error"]["code"] == "conflict", body
    assert body["error"]["details"] == {"outstanding": 2000}
    status, body = await pay(api, owner, gig_id, method="paypal", key="all", amount=None)
    assert status == 201 and body["payment"]["status"] == "succeeded", body
    for key, amount in (("again", None), ("one-more-cent", 1)):
        status, body = await pay(api, owner, gig_id, method="paypal", key=key, amount=amount)
        assert status == 409 and body["error"]["details"] == {"outstanding": 0}, body
    _, free_gig = await seed_gig(test_env.database_url, owner, fee=0)
    status, body = await pay(api, owner, free_gig, key="free", amount=None)
    assert status == 409 and body["error"]["details"] == {"outstanding": 0}, body
    _, cancelled = await seed_gig(test_env.database_url, owner, status="cancelled")
    status, body = await pay(api, owner, cancelled, key="cancelled", amount=None)
    assert status == 409 and body["error"]["details"] == {"outstanding": 120_000}, body
    assert len(fakes.braintree.sales) == 1 and fakes.stripe.requests == []
    # A refused request keeps no key: the same key pays once there is something to pay.
    status, body = await pay(api, owner, gig_id, method="paypal", key="too-much", amount=2001)
    assert status == 409


async def test_concurrent_payments_on_two_nodes_never_exceed_the_fee(pay_hubs, test_env, fakes):
    node_a, node_b = pay_hubs
    api_a, api_b = Api(node_a.url), Api(node_b.url)
    members = await api_a.register_many(*(f"member{i}" for i in range(8)))
    _, gig_id = await seed_gig(test_env.database_url, members[0], members=members[1:], fee=3000)
    answers = await asyncio.gather(
        *(
            pay(api_a if i % 2 else api_b, member, gig_id, key=f"k{i}", amount=1000)
            for i, member in enumerate(members)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 201, 201, 409, 409, 409, 409, 409], answers
    assert sum(b["payment"]["amount"] for s, b in answers if s == 201) == 3000
    assert all(b["error"]["details"] == {"outstanding": 0} for s, b in answers if s == 409)
    assert fakes.stripe.created == 3
    assert await gig_money(api_a, members[0], gig_id) == (0, 0)


async def test_a_played_gig_is_paid_when_its_payments_cover_the_fee(pay_hubs, test_env, fakes):
    node_a, node_b = pay_hubs
    api = Api(node_a.url)
    owner, singer = await api.register_many("owner", "singer")
    _, gig_id = await seed_gig(
        test_env.database_url, owner, members=(singer,), fee=3000, status="played"
    )
    phone = await Phone(singer).connect(node_b.url)
    try:
        status, _ = await pay(api, owner, gig_id, method="paypal", key="a", amount=1000)
        assert status == 201
        status, body = await api.request("GET", f"/api/gigs/{gig_id}", token=owner.access_token)
        assert body["status"] == "played"
        status, _ = await pay(api, singer, gig_id, method="paypal", key="b", amount=None)
        assert status == 201
        pushed: Any = await phone.next("gig:updated")
        event = GigUpdatedEvent.model_validate(pushed)
        assert (event.gig.id, event.gig.status, event.change) == (gig_id, "paid", "status_changed")
        status, body = await api.request("GET", f"/api/gigs/{gig_id}", token=owner.access_token)
        assert (body["status"], body["paidAmount"], body["outstanding"]) == ("paid", 3000, 0)
    finally:
        await phone.close()


# The right currency


async def test_jpy_and_kwd_gigs_are_sold_through_their_merchant_accounts(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, yen_gig = await seed_gig(test_env.database_url, owner, fee=50_000, currency="JPY")
    _, dinar_gig = await seed_gig(test_env.database_url, owner, fee=12_345, currency="KWD")
    status, yen = await pay(
        api, owner, yen_gig, method="paypal", key="yen", amount=None, currency="JPY"
    )
    assert status == 201 and yen["payment"]["status"] == "succeeded", yen
    status, dinar = await pay(
        api, owner, dinar_gig, method="paypal", key="dinar", amount=None, currency="KWD"
    )
    assert status == 201 and dinar["payment"]["status"] == "succeeded", dinar
    assert [(s["merchant_account_id"], s["amount"]) for s in fakes.braintree.sales] == [
        ("band_jpy", "50000"),
        ("band_kwd", "12.345"),
    ]
    assert {t["currency"] for t in fakes.braintree.transactions.values()} == {"JPY", "KWD"}


async def test_a_currency_without_a_merchant_account_is_refused_before_any_row(
    pay_hub, test_env, fakes
):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, currency="GBP")
    status, body = await pay(api, owner, gig_id, method="paypal", key="gbp", currency="GBP")
    assert status == 422 and body["error"]["code"] == "currency_not_supported", body
    assert body["error"]["details"] == {
        "currency": "GBP",
        "currencies": ["EUR", "JPY", "KWD", "USD"],
    }
    assert fakes.braintree.sales == []
    conn = await asyncpg.connect(test_env.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 0
        assert await conn.fetchval("SELECT count(*) FROM payment_idempotency") == 0
    finally:
        await conn.close()
    status, body = await pay(api, owner, gig_id, key="gbp", currency="GBP")  # Stripe takes it
    assert status == 201, body


async def test_a_sale_in_another_currency_is_voided_and_fails(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=50_000, currency="JPY")
    fakes.braintree.charge_in = "EUR"  # the account charges in EUR at Braintree
    status, body = await pay(api, owner, gig_id, method="paypal", key="wrong", currency="JPY")
    assert status == 502 and body["error"]["code"] == "gateway_error", body
    payment = body["error"]["details"]["payment"]
    assert payment["status"] == "failed" and payment["transactionId"] in fakes.braintree.voided
    assert [t["status"] for t in fakes.braintree.transactions.values()] == ["voided"]
    assert await gig_money(api, owner, gig_id) == (0, 50_000)  # nothing counts as paid
    assert await pay(api, owner, gig_id, method="paypal", key="wrong", currency="JPY") == (
        status,
        body,
    )


# Uncertain outcomes


@pytest_asyncio.fixture
async def reconciling_hub(
    test_env: Any, fakes: FakeGateways, tmp_path: Path
) -> AsyncIterator[HubNode]:
    env = test_env.hub_env(
        **fakes.hub_env(),
        PAYMENT_GATEWAY_TIMEOUT_SECONDS="1",
        PAYMENT_IDEMPOTENCY_STALE_SECONDS="2",
        PAYMENT_RECONCILE_SECONDS="1",
    )
    node = await start_hub_node(env, tmp_path / "r", "node-r")
    try:
        yield node
    finally:
        await node.stop()


async def test_a_braintree_timeout_after_a_settled_sale_ends_succeeded_by_the_reconciler(
    reconciling_hub, test_env, fakes
):
    api = Api(reconciling_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    phone = await Phone(owner).connect(reconciling_hub.url)
    try:
        fakes.braintree.hold = hold = Hold()  # the sale is made, its answer never comes
        status, body = await pay(api, owner, gig_id, method="paypal", key="slow", amount=None)
        assert status == 202, body
        PaymentUncertain.model_validate(body)
        assert body["payment"]["status"] == "pending" and body["retryable"] is False
        [transaction] = fakes.braintree.transactions.values()
        transaction["status"] = "settled"
        hold.release.set()
        assert await pay(api, owner, gig_id, method="paypal", key="slow", amount=None) == (
            status,
            body,
        )
        while True:
            pushed = PaymentUpdated.model_validate(await phone.next("payment:updated", 10))
            if pushed.payment.status != "pending":
                break
        assert (pushed.payment.id, pushed.payment.status) == (body["payment"]["id"], "succeeded")
        assert pushed.payment.transactionId == transaction["id"]
        assert len(fakes.braintree.sales) == 1 and fakes.braintree.searches >= 1
        assert await gig_money(api, owner, gig_id) == (2000, 0)
    finally:
        await phone.close()


async def test_a_stripe_5xx_after_the_intent_was_made_is_found_by_its_payment_id(
    reconciling_hub, test_env, fakes
):
    api = Api(reconciling_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    phone = await Phone(owner).connect(reconciling_hub.url)
    try:
        fakes.stripe.fail_after_create = True
        status, body = await pay(api, owner, gig_id, key="stripe-5xx", amount=None)
        assert status == 202 and body["payment"]["transactionId"] is None, body
        [intent] = fakes.stripe.intents.values()
        pushed = PaymentUpdated.model_validate(await phone.next("payment:updated", 10))
        assert pushed.payment.id == body["payment"]["id"]
        assert (pushed.payment.status, pushed.payment.transactionId) == ("pending", intent["id"])
        assert fakes.stripe.searches >= 1 and fakes.stripe.created == 1
        # Found and still pending: Stripe's webhook settles it from here, as any other.
        status, _ = await post_stripe_event(reconciling_hub, fakes.stripe.succeeded(intent["id"]))
        assert status == 200
        pushed = PaymentUpdated.model_validate(await phone.next("payment:updated", 10))
        assert pushed.payment.status == "succeeded"
    finally:
        await phone.close()


# Keep less


@pytest_asyncio.fixture
async def forgetful_hub(
    test_env: Any, fakes: FakeGateways, tmp_path: Path
) -> AsyncIterator[HubNode]:
    env = test_env.hub_env(
        **fakes.hub_env(),
        PAYMENT_IDEMPOTENCY_RETENTION_SECONDS="1",
        PAYMENT_RECONCILE_SECONDS="1",
    )
    node = await start_hub_node(env, tmp_path / "f", "node-f")
    try:
        yield node
    finally:
        await node.stop()


async def test_no_client_secret_is_kept_and_a_replay_fetches_it_again(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=2000)
    first = await pay(api, owner, gig_id, key="secret", amount=500)
    assert first[0] == 201 and first[1]["clientSecret"], first
    [intent] = fakes.stripe.intents.values()
    assert first[1]["clientSecret"] == intent["client_secret"]
    assert await pay(api, owner, gig_id, key="secret", amount=500) == first
    conn = await asyncpg.connect(test_env.database_url)
    try:
        kept = await conn.fetchval(
            "SELECT count(*) FROM payment_idempotency WHERE response_body LIKE '%' || $1 || '%'"
            " OR response_body LIKE '%clientSecret%' OR response_body LIKE '%_secret_%'",
            intent["client_secret"],
        )
        in_payments = await conn.fetchval(
            "SELECT count(*) FROM payments WHERE row_to_json(payments)::text LIKE '%_secret_%'"
        )
        stored = await conn.fetchval("SELECT count(*) FROM payment_idempotency")
    finally:
        await conn.close()
    assert (kept, in_payments, stored) == (0, 0, 1)


async def test_idempotency_records_past_their_retention_are_swept(forgetful_hub, test_env, fakes):
    api = Api(forgetful_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner, fee=5000)
    status, first = await pay(api, owner, gig_id, method="paypal", key="once", amount=1000)
    assert status == 201, first
    conn = await asyncpg.connect(test_env.database_url)
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while await conn.fetchval("SELECT count(*) FROM payment_idempotency") != 0:
            assert asyncio.get_running_loop().time() < deadline, "the record was never swept"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    # Past its retention the key is a new payment, as with Stripe's 24 h keys.
    status, second = await pay(api, owner, gig_id, method="paypal", key="once", amount=1000)
    assert status == 201 and second["payment"]["id"] != first["payment"]["id"], second
    assert len(fakes.braintree.sales) == 2
