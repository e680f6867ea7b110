"""Payments: Stripe and PayPal (Braintree) through their official libraries against local
fakes, idempotent POSTs (retries, concurrent retries, a node dying mid-charge), signed
webhooks applied exactly once and pushed across nodes, and gig fee splits.

Bands, members and gigs are seeded with SQL, as the bands and gigs REST would write them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from hub.payments.views import LedgerPage, MethodsView, PaymentCreated, PaymentUpdated, SplitView
from tests.support import Account, Api, HubNode, Phone, start_hub_node
from tests.support.gateways import (
    BRAINTREE_PRIVATE_KEY,
    DECLINED_NONCE,
    STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET,
    VALID_NONCE,
    FakeGateways,
    Hold,
    braintree_webhook,
    signed_stripe_webhook,
)


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[FakeGateways]:
    gateways = await FakeGateways().start()
    try:
        yield gateways
    finally:
        await gateways.stop()


@pytest_asyncio.fixture
async def pay_hub(test_env: Any, fakes: FakeGateways, tmp_path: Path) -> AsyncIterator[HubNode]:
    node = await start_hub_node(test_env.hub_env(**fakes.hub_env()), tmp_path / "a", "node-a")
    try:
        yield node
    finally:
        await node.stop()


@pytest_asyncio.fixture
async def pay_hubs(
    test_env: Any, fakes: FakeGateways, tmp_path: Path
) -> AsyncIterator[tuple[HubNode, HubNode]]:
    # A short lease, so a record left by a killed node is retaken within the test.
    env = test_env.hub_env(
        **fakes.hub_env(),
        PAYMENT_GATEWAY_TIMEOUT_SECONDS="2",
        PAYMENT_IDEMPOTENCY_STALE_SECONDS="3",
    )
    nodes = await asyncio.gather(
        start_hub_node(env, tmp_path / "a", "node-a"),
        start_hub_node(env, tmp_path / "b", "node-b"),
    )
    try:
        yield nodes[0], nodes[1]
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


async def seed_gig(
    database_url: str,
    owner: Account,
    *,
    admins: tuple[Account, ...] = (),
    members: tuple[Account, ...] = (),
    fee: int = 120_000,
    currency: str = "EUR",
    status: str = "confirmed",
) -> tuple[str, str]:
    """A band with its owner, admins and members, and one gig: (band id, gig id)."""
    band_id, gig_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = int(time.time() * 1000)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO bands (id, name, owner_id) VALUES ($1, $2, $3)",
            band_id,
            "The Invoices",
            owner.id,
        )
        roles = (
            [(owner, "owner")] + [(a, "admin") for a in admins] + [(m, "member") for m in members]
        )
        await conn.executemany(
            "INSERT INTO band_members (band_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
            [(band_id, a.id, role, now) for a, role in roles],
        )
        await conn.execute(
            "INSERT INTO gigs (id, band_id, venue_name, date, fee_amount, currency, status, "
            "created_at, updated_at) VALUES ($1, $2, 'Paradiso', '2026-06-01', $3, $4, $5, $6, $6)",
            gig_id,
            band_id,
            fee,
            currency,
            status,
            now,
        )
    finally:
        await conn.close()
    return band_id, gig_id


async def pay(
    api: Api,
    payer: Account,
    gig_id: str,
    *,
    method: str = "stripe",
    key: str | None = None,
    amount: Any = 1250,
    currency: str = "EUR",
    nonce: str = VALID_NONCE,
) -> tuple[int, Any]:
    body: dict[str, Any] = {"gigId": gig_id, "currency": currency}
    if amount is not None:
        body["amount"] = amount  # without one: the whole outstanding amount
    if method == "paypal":
        body["paymentMethodNonce"] = nonce
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.request(
        "POST", f"/api/payments/{method}", token=payer.access_token, json=body, headers=headers
    )


async def ledger(api: Api, account: Account, query: str = "") -> list[dict[str, Any]]:
    status, body = await api.request(
        "GET", f"/api/payments/ledger{query}", token=account.access_token
    )
    assert status == 200, body
    return LedgerPage.model_validate(body).model_dump()["items"]


async def post_stripe_event(
    node: HubNode, event: dict[str, Any], secret: str = STRIPE_WEBHOOK_SECRET
) -> tuple[int, Any]:
    payload, headers = signed_stripe_webhook(event, secret)
    return await post_raw(node, "/api/payments/webhooks/stripe", payload, headers)


async def post_raw(
    node: HubNode, path: str, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(node.url + path, data=payload, headers=headers) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


# Paying


async def test_stripe_payment_creates_a_pending_intent_for_a_band_member(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner, drummer = await api.register_many("owner", "drummer")
    band_id, gig_id = await seed_gig(test_env.database_url, owner, members=(drummer,))
    status, body = await pay(api, drummer, gig_id, key="first-try")
    assert status == 201, body
    created = PaymentCreated.model_validate(body)
    payment = created.payment
    assert (payment.status, payment.method, payment.amount, payment.currency) == (
        "pending",
        "stripe",
        1250,
        "EUR",
    )
    assert (payment.gigId, payment.bandId, payment.userId) == (gig_id, band_id, drummer.id)
    intent = fakes.stripe.intents[payment.transactionId]
    assert created.clientSecret == intent["client_secret"]
    [request] = fakes.stripe.requests
    assert request["idempotency_key"] == f"{drummer.id}:first-try"
    assert request["params"]["amount"] == "1250" and request["params"]["currency"] == "eur"
    assert request["params"]["metadata[paymentId]"] == payment.id
    assert [p["id"] for p in await ledger(api, drummer)] == [payment.id]
    assert await ledger(api, owner) == []  # the ledger is the caller's own payments


async def test_paypal_payment_is_a_braintree_sale_submitted_for_settlement(
    pay_hub, test_env, fakes
):
    api = Api(pay_hub.url)
    owner, singer = await api.register_many("owner", "singer")
    _, gig_id = await seed_gig(test_env.database_url, owner, members=(singer,))
    status, body = await pay(api, singer, gig_id, method="paypal", key="pp-1", amount=1250)
    assert status == 201, body
    payment = PaymentCreated.model_validate(body).payment
    assert payment.status == "succeeded" and payment.method == "paypal"
    [sale] = fakes.braintree.sales
    assert sale == {
        "amount": "12.50",
        "merchant_account_id": "band_eur",
        "nonce": VALID_NONCE,
        "order_id": payment.id,
        "type": "sale",
        "submit_for_settlement": "true",
    }
    assert payment.transactionId in fakes.braintree.transactions


async def test_methods_list_what_the_hub_is_configured_for(pay_hub, hub_node):
    api = Api(pay_hub.url)
    user = await api.register("someone")
    status, body = await api.request("GET", "/api/payments/methods", token=user.access_token)
    assert status == 200, body
    methods = MethodsView.model_validate(body).model_dump(exclude_none=True)["methods"]
    stripe_currencies = methods[0].pop("currencies")
    assert {"EUR", "USD", "JPY", "KWD", "BHD"} <= set(stripe_currencies)
    assert methods == [
        {"method": "stripe", "publishableKey": "pk_test_hubfake"},
        {
            "method": "paypal",
            "currencies": ["EUR", "JPY", "KWD", "USD"],  # those with a merchant account
            "clientToken": "fake-client-token",
        },
    ]
    bare = Api(hub_node.url)  # no gateway configured
    user = await bare.register("someone")
    status, body = await bare.request("GET", "/api/payments/methods", token=user.access_token)
    assert (status, body) == (200, {"methods": []})
    status, body = await pay(bare, user, str(uuid.uuid4()), key="k")
    assert status == 503 and body["error"]["code"] == "unavailable"
    assert "not configured" in body["error"]["message"]
    status, _ = await post_raw(hub_node, "/api/payments/webhooks/stripe", b"{}")
    assert status == 503


async def test_payment_bodies_are_validated_and_money_is_never_a_float(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    bad = [
        {"amount": 12.5},
        {"amount": 12.0},
        {"amount": "1250"},
        {"amount": 0},
        {"amount": -5},
        {"amount": True},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"currency": 978},
    ]
    for change in bad:
        body = {"gigId": gig_id, "amount": 1250, "currency": "EUR", **change}
        status, answer = await api.request(
            "POST",
            "/api/payments/stripe",
            token=owner.access_token,
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert status == 400 and answer["error"]["code"] == "invalid_payload", (change, answer)
    status, answer = await pay(api, owner, gig_id)  # no Idempotency-Key
    assert status == 400 and answer["error"]["details"] == {"field": "Idempotency-Key"}
    status, answer = await pay(api, owner, gig_id, key="has space")
    assert status == 400
    status, answer = await pay(api, owner, gig_id, method="paypal", key="k", nonce="")
    assert status == 400
    status, answer = await api.request(
        "POST", "/api/payments/stripe", json={}, headers={"Idempotency-Key": "k"}
    )
    assert status == 401
    status, answer = await pay(api, owner, gig_id, key="usd", currency="USD")
    assert status == 409 and answer["error"]["details"] == {"currency": "EUR"}
    assert fakes.stripe.requests == [] and fakes.braintree.sales == []


async def test_only_members_of_the_gigs_band_may_pay(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner, stranger = await api.register_many("owner", "stranger")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    status, missing = await pay(api, owner, str(uuid.uuid4()), key="nowhere")
    assert status == 404 and missing["error"]["code"] == "not_found"
    for method in ("stripe", "paypal"):
        # As on every route of a band's: a stranger cannot tell the gig from a missing one.
        status, body = await pay(api, stranger, gig_id, method=method, key="mine")
        assert (status, body) == (404, missing)
    _, cancelled = await seed_gig(test_env.database_url, owner, status="cancelled")
    status, body = await pay(api, owner, cancelled, key="late")
    assert status == 409
    assert fakes.stripe.requests == [] and fakes.braintree.sales == []
    assert await ledger(api, stranger) == []
    # A refused request leaves its key free: the owner's own "nowhere" key now works.
    status, body = await pay(api, owner, gig_id, key="nowhere")
    assert status == 201, body


# Idempotency


@pytest.mark.parametrize("method", ["stripe", "paypal"])
async def test_a_retry_gets_the_first_answer_and_charges_once(pay_hub, test_env, fakes, method):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    first = await pay(api, owner, gig_id, method=method, key="retry-me")
    assert first[0] == 201, first
    for _ in range(3):
        assert await pay(api, owner, gig_id, method=method, key="retry-me") == first
    if method == "stripe":
        assert fakes.stripe.created == 1 and len(fakes.stripe.requests) == 1
    else:
        assert len(fakes.braintree.sales) == 1
    assert len(await ledger(api, owner)) == 1
    # Keys are per user: another member's same key is another payment.
    other = await api.register("other")
    conn = await asyncpg.connect(test_env.database_url)
    try:
        band_id = await conn.fetchval("SELECT band_id FROM gigs WHERE id = $1", gig_id)
        await conn.execute(
            "INSERT INTO band_members (band_id, user_id, role, joined_at) VALUES ($1, $2, 'member', 0)",
            band_id,
            other.id,
        )
    finally:
        await conn.close()
    second = await pay(api, other, gig_id, method=method, key="retry-me")
    assert second[0] == 201 and second[1]["payment"]["id"] != first[1]["payment"]["id"]


async def test_concurrent_retries_across_nodes_wait_for_one_charge(pay_hubs, test_env, fakes):
    node_a, node_b = pay_hubs
    api_a, api_b = Api(node_a.url), Api(node_b.url)
    owner = await api_a.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    fakes.stripe.delay = 1.0  # the first request is still at Stripe while the others arrive
    answers = await asyncio.gather(
        *(pay(api, owner, gig_id, key="double-tap") for api in (api_a, api_b, api_a, api_b, api_a))
    )
    assert answers[0][0] == 201, answers[0]
    assert all(answer == answers[0] for answer in answers), answers
    assert fakes.stripe.created == 1 and len(fakes.stripe.requests) == 1


async def test_the_same_key_with_another_body_is_refused(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    assert (await pay(api, owner, gig_id, key="one-payment", amount=1250))[0] == 201
    status, body = await pay(api, owner, gig_id, key="one-payment", amount=1300)
    assert status == 422 and body["error"]["code"] == "idempotency_mismatch"
    status, body = await pay(api, owner, gig_id, method="paypal", key="one-payment", amount=1250)
    assert status == 422
    assert len(fakes.stripe.requests) == 1 and fakes.braintree.sales == []


@pytest.mark.parametrize("method", ["stripe", "paypal"])
async def test_a_request_whose_node_died_mid_charge_is_retaken_without_a_second_charge(
    pay_hubs, test_env, fakes, method
):
    node_a, node_b = pay_hubs
    api_a, api_b = Api(node_a.url), Api(node_b.url)
    owner = await api_b.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    hold = Hold()
    if method == "stripe":
        fakes.stripe.hold = hold
    else:
        fakes.braintree.hold = hold
    doomed = asyncio.create_task(pay(api_a, owner, gig_id, method=method, key="crash"))
    await asyncio.wait_for(hold.arrived.wait(), 10)  # the gateway has it; node A never hears back
    await node_a.kill()
    with pytest.raises(aiohttp.ClientError):
        await doomed
    status, body = await pay(api_b, owner, gig_id, method=method, key="crash")
    assert status == 201, body
    payment = body["payment"]
    if method == "stripe":
        assert fakes.stripe.created == 1
        keys = {r["idempotency_key"] for r in fakes.stripe.requests}
        assert keys == {f"{owner.id}:crash"} and len(fakes.stripe.requests) == 2
        [intent] = fakes.stripe.intents.values()
        assert intent["metadata"]["paymentId"] == payment["id"]
        assert body["clientSecret"] == intent["client_secret"]
    else:
        assert len(fakes.braintree.sales) == 1 and fakes.braintree.searches == 1
        assert fakes.braintree.sales[0]["order_id"] == payment["id"]
        assert payment["status"] == "succeeded"
    assert [p["id"] for p in await ledger(api_b, owner)] == [payment["id"]]
    assert await pay(api_b, owner, gig_id, method=method, key="crash") == (status, body)


# Gateway failures


async def test_gateway_failures_fail_the_payment_with_a_clear_answer(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    # A 5xx may come after the gateway did the work: pending, not failed, and do not pay
    # again (the reconciler finds out; see test_payment_money.py).
    fakes.stripe.fail_with = 500
    status, body = await pay(api, owner, gig_id, key="stripe-down")
    assert status == 202 and body["retryable"] is False, body
    assert body["payment"]["status"] == "pending"
    assert await pay(api, owner, gig_id, key="stripe-down") == (status, body)
    fakes.stripe.fail_with = 402
    status, body = await pay(api, owner, gig_id, key="declined")
    assert status == 402 and body["error"]["code"] == "payment_failed"
    assert body["error"]["details"]["reason"] == "card_declined"
    status, body = await pay(
        api, owner, gig_id, method="paypal", key="pp-declined", nonce=DECLINED_NONCE
    )
    assert status == 402 and body["error"]["code"] == "payment_failed"
    declined = body["error"]["details"]["payment"]
    assert (
        declined["status"] == "failed" and declined["transactionId"] in fakes.braintree.transactions
    )
    fakes.braintree.fail_with = 503
    status, body = await pay(api, owner, gig_id, method="paypal", key="pp-down")
    assert status == 202 and body["payment"]["status"] == "pending", body
    statuses = sorted(p["status"] for p in await ledger(api, owner))
    assert statuses == ["failed", "failed", "pending", "pending"]
    assert len(await ledger(api, owner, "?status=failed&limit=2")) == 2
    status, first_page = await api.request(
        "GET", "/api/payments/ledger?limit=3", token=owner.access_token
    )
    assert status == 200 and len(first_page["items"]) == 3 and first_page["nextCursor"]
    cursor = first_page["nextCursor"]
    status, second_page = await api.request(
        "GET", f"/api/payments/ledger?limit=3&cursor={cursor}", token=owner.access_token
    )
    assert len(second_page["items"]) == 1 and second_page["nextCursor"] is None
    everything = [p["id"] for p in first_page["items"] + second_page["items"]]
    assert everything == [p["id"] for p in await ledger(api, owner)]
    assert (
        await api.request("GET", "/api/payments/ledger?cursor=nonsense", token=owner.access_token)
    )[0] == 400
    log = pay_hub.log()
    assert "did not answer" in log
    for secret in (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, BRAINTREE_PRIVATE_KEY):
        assert secret not in log


# Webhooks


async def test_stripe_webhooks_move_a_payment_once_and_reach_the_owner_on_another_node(
    pay_hubs, test_env, fakes
):
    node_a, node_b = pay_hubs
    api = Api(node_a.url)
    owner, admin, drummer, bassist = await api.register_many("owner", "admin", "drummer", "bassist")
    _, gig_id = await seed_gig(
        test_env.database_url, owner, admins=(admin,), members=(drummer, bassist)
    )
    owner_phone = await Phone(owner).connect(node_b.url)
    admin_phone = await Phone(admin).connect(node_a.url)
    bassist_phone = await Phone(bassist).connect(node_b.url)
    try:
        status, body = await pay(api, drummer, gig_id, key="gig-fee")
        assert status == 201, body
        payment_id, intent_id = body["payment"]["id"], body["payment"]["transactionId"]
        pushed = PaymentUpdated.model_validate(await owner_phone.next("payment:updated"))
        assert (pushed.payment.id, pushed.payment.status) == (payment_id, "pending")
        assert (await admin_phone.next("payment:updated"))["payment"]["status"] == "pending"

        succeeded = fakes.stripe.succeeded(intent_id)
        assert await post_stripe_event(node_a, succeeded) == (
            200,
            {"received": True, "duplicate": False},
        )
        pushed = PaymentUpdated.model_validate(await owner_phone.next("payment:updated"))
        assert (pushed.payment.id, pushed.payment.status) == (payment_id, "succeeded")
        assert (await admin_phone.next("payment:updated"))["payment"]["status"] == "succeeded"
        assert (await ledger(api, drummer))[0]["status"] == "succeeded"

        # A replay changes nothing and pushes nothing; a late failure report neither.
        assert await post_stripe_event(node_b, succeeded) == (
            200,
            {"received": True, "duplicate": True},
        )
        assert (await post_stripe_event(node_a, fakes.stripe.payment_failed(intent_id)))[0] == 200
        assert (await ledger(api, drummer))[0]["status"] == "succeeded"

        refunded = fakes.stripe.refunded(intent_id)
        assert (await post_stripe_event(node_b, refunded))[0] == 200
        # The next push is the refund: the replay and the late failure pushed nothing.
        assert (await owner_phone.next("payment:updated"))["payment"]["status"] == "refunded"
        assert (await post_stripe_event(node_a, refunded))[1]["duplicate"] is True
        assert (await ledger(api, drummer, "?status=refunded"))[0]["id"] == payment_id
        assert bassist_phone.pending("payment:updated") == 0  # members see only their own
    finally:
        for phone in (owner_phone, admin_phone, bassist_phone):
            await phone.close()


async def test_a_tampered_stripe_webhook_is_refused_and_changes_nothing(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    _, body = await pay(api, owner, gig_id, key="k")
    intent_id = body["payment"]["transactionId"]
    event = fakes.stripe.succeeded(intent_id)
    status, answer = await post_stripe_event(pay_hub, event, secret="whsec_not_ours")
    assert status == 400 and answer["error"]["code"] == "invalid_payload"
    payload, headers = signed_stripe_webhook(event)
    tampered = payload.replace(b'"succeeded"', b'"processing"', 1)
    assert (await post_raw(pay_hub, "/api/payments/webhooks/stripe", tampered, headers))[0] == 400
    assert (await post_raw(pay_hub, "/api/payments/webhooks/stripe", payload))[0] == 400
    other_time = {"Stripe-Signature": headers["Stripe-Signature"].replace("t=", "t=1", 1)}
    assert (await post_raw(pay_hub, "/api/payments/webhooks/stripe", payload, other_time))[0] == 400
    assert (await ledger(api, owner))[0]["status"] == "pending"
    # The genuine event still applies: the refused ones were not recorded as seen.
    assert (await post_stripe_event(pay_hub, event))[1] == {"received": True, "duplicate": False}
    assert (await ledger(api, owner))[0]["status"] == "succeeded"


async def test_braintree_webhooks_are_verified_and_applied_once(pay_hub, test_env, fakes):
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    phone = await Phone(owner).connect(pay_hub.url)
    try:
        _, body = await pay(api, owner, gig_id, method="paypal", key="pp")
        transaction_id = body["payment"]["transactionId"]
        assert (await phone.next("payment:updated"))["payment"]["status"] == "succeeded"
        declined = braintree_webhook("transaction_settlement_declined", transaction_id)
        tampered = {**declined, "bt_signature": declined["bt_signature"][:-4] + "0000"}
        status, answer = await post_raw(pay_hub, "/api/payments/webhooks/braintree", tampered)
        assert status == 400 and answer["error"]["code"] == "invalid_payload"
        assert (await post_raw(pay_hub, "/api/payments/webhooks/braintree", {"bt_signature": "x"}))[
            0
        ] == 400
        assert (await ledger(api, owner))[0]["status"] == "succeeded"

        status, answer = await post_raw(pay_hub, "/api/payments/webhooks/braintree", declined)
        assert (status, answer) == (200, {"received": True, "duplicate": False})
        pushed = PaymentUpdated.model_validate(await phone.next("payment:updated"))
        assert pushed.payment.status == "failed" and pushed.payment.transactionId == transaction_id
        status, answer = await post_raw(pay_hub, "/api/payments/webhooks/braintree", declined)
        assert (status, answer) == (200, {"received": True, "duplicate": True})
        unknown = braintree_webhook("transaction_settled", "not-ours")
        assert (await post_raw(pay_hub, "/api/payments/webhooks/braintree", unknown))[0] == 200
        assert (await ledger(api, owner))[0]["status"] == "failed"
        assert phone.pending("payment:updated") == 0
    finally:
        await phone.close()


def multipart(fields: dict[str, str], part_headers: bytes = b"") -> bytes:
    """The fields as multipart/form-data with the boundary ``b0``, each part also carrying
    ``part_headers`` (CRLF-terminated lines)."""
    parts = [
        b'--b0\r\nContent-Disposition: form-data; name="%s"\r\n%s\r\n%s\r\n'
        % (name.encode(), part_headers, value.encode())
        for name, value in fields.items()
    ]
    return b"".join(parts) + b"--b0--\r\n"


async def test_a_braintree_webhook_that_is_not_a_readable_form_is_400_and_changes_nothing(
    pay_hub, test_env, fakes
):
    """A multipart body without a boundary made the form parser raise, answered 500 (found
    by fuzzing). Each body here carries a genuine notification in an envelope that does not
    parse; the last one, well formed, shows it would have applied."""
    api = Api(pay_hub.url)
    owner = await api.register("owner")
    _, gig_id = await seed_gig(test_env.database_url, owner)
    _, body = await pay(api, owner, gig_id, method="paypal", key="pp")
    declined = braintree_webhook(
        "transaction_settlement_declined", body["payment"]["transactionId"]
    )
    form = multipart(declined)
    not_utf8 = b'--b0\r\nContent-Disposition: form-data; name="x"\r\n\r\n\xff\r\n'
    unreadable = [
        ("multipart/form-data", form),  # no boundary
        ("multipart/form-data; boundary=", form),
        ("multipart/form-data; boundary=zz", form),  # the boundary never comes
        ("multipart/form-data; boundary=b0", form[:-10]),  # cut short
        (
            "multipart/form-data; boundary=b0",
            multipart(declined, b"Content-Type: text/plain; charset=nope\r\n"),
        ),
        (
            "multipart/form-data; boundary=b0",
            multipart(declined, b"Content-Transfer-Encoding: rot13\r\n"),
        ),
        ("multipart/form-data; boundary=b0", multipart(declined, b"no header line\r\n")),
        ("multipart/form-data; boundary=b0", form.replace(b"--b0--", not_utf8 + b"--b0--")),
        ("application/x-www-form-urlencoded; charset=nope", urlencode(declined).encode()),
        ("application/x-www-form-urlencoded", urlencode(declined).encode() + b"&x=\xff"),
    ]
    path = "/api/payments/webhooks/braintree"
    for content_type, payload in unreadable:
        status, answer = await post_raw(pay_hub, path, payload, {"Content-Type": content_type})
        assert status == 400, (content_type, payload[-40:], answer)
        assert answer["error"]["code"] == "invalid_payload" and "form" in answer["error"]["message"]
    assert (await ledger(api, owner))[0]["status"] == "succeeded"
    well_formed = {"Content-Type": "multipart/form-data; boundary=b0"}
    status, answer = await post_raw(pay_hub, path, form, well_formed)
    assert (status, answer) == (200, {"received": True, "duplicate": False})
    assert (await ledger(api, owner))[0]["status"] == "failed"


async def test_webhooks_are_not_rate_limited(test_env, fakes, tmp_path):
    env = test_env.hub_env(**fakes.hub_env(), API_RATE_LIMIT="2/600")
    node = await start_hub_node(env, tmp_path / "limited", "limited")
    try:
        for _ in range(5):
            event = fakes.stripe.event("payment_intent.created", {"id": "pi_x", "metadata": {}})
            assert (await post_stripe_event(node, event))[0] == 200
        statuses = [(await post_raw(node, "/api/payments/methods", None))[0] for _ in range(3)]
        assert statuses[-1] == 429  # the limit itself is on
    finally:
        await node.stop()


# Splits


async def test_an_equal_split_hands_out_the_remainder_by_user_id(hub_node, test_env):
    api = Api(hub_node.url)
    owner, admin, member, stranger = await api.register_many("owner", "admin", "member", "stranger")
    _, gig_id = await seed_gig(
        test_env.database_url, owner, admins=(admin,), members=(member,), fee=1000
    )
    status, body = await api.request(
        "PUT", f"/api/gigs/{gig_id}/split", token=admin.access_token, json={"mode": "equal"}
    )
    assert status == 200, body
    split = SplitView.model_validate(body)
    ordered = sorted([owner.id, admin.id, member.id])
    assert [(s.userId, s.amount) for s in split.shares] == list(
        zip(ordered, [334, 333, 333], strict=True)
    )
    assert (split.total, split.currency, split.mode, split.stale) == (1000, "EUR", "equal", False)
    assert await api.request("GET", f"/api/gigs/{gig_id}/split", token=member.access_token) == (
        200,
        body,
    )
    status, body = await api.request(
        "PUT", f"/api/gigs/{gig_id}/split", token=member.access_token, json={"mode": "equal"}
    )
    assert status == 403
    assert (await api.request("GET", f"/api/gigs/{gig_id}/split", token=stranger.access_token))[
        0
    ] == 404  # as for every route of a band's: no hint that the gig exists
    conn = await asyncpg.connect(test_env.database_url)
    try:
        await conn.execute("UPDATE gigs SET fee_amount = 1001 WHERE id = $1", gig_id)
    finally:
        await conn.close()
    status, body = await api.request("GET", f"/api/gigs/{gig_id}/split", token=owner.access_token)
    assert body["stale"] is True
    status, body = await api.request(
        "PUT", f"/api/gigs/{gig_id}/split", token=owner.access_token, json={"mode": "equal"}
    )
    assert [s["amount"] for s in body["shares"]] == [334, 334, 333] and body["stale"] is False


async def test_shares_must_name_members_and_add_up_to_the_fee(hub_node, test_env):
    api = Api(hub_node.url)
    owner, member, stranger = await api.register_many("owner", "member", "stranger")
    _, gig_id = await seed_gig(test_env.database_url, owner, members=(member,), fee=50_000)
    path = f"/api/gigs/{gig_id}/split"
    assert (await api.request("GET", path, token=owner.access_token))[0] == 404

    async def put(shares: Any, **extra: Any) -> tuple[int, Any]:
        return await api.request(
            "PUT",
            path,
            token=owner.access_token,
            json={"mode": "shares", "shares": shares, **extra},
        )

    status, body = await put(
        [{"userId": owner.id, "amount": 30_000}, {"userId": member.id, "amount": 19_999}]
    )
    assert status == 409 and body["error"]["details"] == {"fee": 50_000, "sum": 49_999}
    status, body = await put(
        [{"userId": owner.id, "amount": 30_000}, {"userId": stranger.id, "amount": 20_000}]
    )
    assert status == 409 and body["error"]["details"] == {"notMembers": [stranger.id]}
    status, body = await put(
        [{"userId": owner.id, "amount": 25_000}, {"userId": owner.id, "amount": 25_000}]
    )
    assert status == 400
    status, body = await put(
        [{"userId": owner.id, "amount": 25_000.5}, {"userId": member.id, "amount": 25_000}]
    )
    assert status == 400
    status, body = await api.request(
        "PUT", path, token=owner.access_token, json={"mode": "equal", "shares": []}
    )
    assert status == 400
    status, body = await put(
        [{"userId": owner.id, "amount": 35_000}, {"userId": member.id, "amount": 15_000}]
    )
    assert status == 200, body
    assert {s["userId"]: s["amount"] for s in body["shares"]} == {
        owner.id: 35_000,
        member.id: 15_000,
    }
    assert (await api.request("GET", path, token=member.access_token))[1] == body
