"""The payment services over in-memory ports, without servers: at most once per key, the one
pay path whatever the gateway, webhooks applied once, and splits behind the gig access rule.
The same flows run over the wire against real gateways' libraries in ``test_payments.py``;
here each rule of the services is pinned where a failure names it directly."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from collections.abc import Collection, Sequence
from typing import Any

import pytest

from hub.errors import (
    Conflict,
    CurrencyNotSupported,
    Forbidden,
    GatewayUnavailable,
    IdempotencyInProgress,
    IdempotencyMismatch,
    InvalidPayload,
    NotFound,
    PaymentFailed,
)
from hub.fanout import Delivery
from hub.payments.idempotency import IdempotentRequests, PaymentAnswer
from hub.payments.ports import (
    ChargeRequest,
    ChargeResult,
    ClientConfig,
    GatewayEvent,
    OutcomeUnknown,
)
from hub.payments.rules import GatewayName, PaymentMethod, payment_fields, request_fingerprint
from hub.payments.service import PaymentRequest, PaymentService
from hub.payments.splits import SplitService
from hub.payments.views import (
    LedgerPage,
    MethodsView,
    PaymentCreated,
    PaymentUncertain,
    PaymentUpdated,
    SplitView,
)
from storage.sql.bands import BandRecord, BandRow, MemberRow
from storage.sql.gigs import GigDetails, GigRow
from storage.sql.payments import AmountRule, GigMoney, NewPayment, PaymentRow, WebhookOutcome
from storage.sql.payments_idempotency import IdempotencyRow, LostClaim
from storage.sql.payments_splits import ShareRow, SplitRow

OWNER, ADMIN, MEMBER, STRANGER = "u-owner", "u-admin", "u-member", "u-stranger"
BAND = "b0000000-0000-4000-8000-000000000000"
GIG = "90000000-0000-4000-8000-000000000000"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


class MemoryIdempotency:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], IdempotencyRow] = {}
        self.found_busy = asyncio.Event()  # a claim found another owner's running record

    async def claim(
        self,
        user_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: int,
        expired_before: int | None = None,
    ) -> IdempotencyRow | None:
        found = self.rows.get((user_id, key))
        if found is not None and expired_before is not None and found.state == "done":
            if found.locked_at < expired_before:
                del self.rows[(user_id, key)]
                found = None
        if found is not None and found.state == "in_progress" and found.owner_token != owner:
            self.found_busy.set()
        return self.rows.setdefault(
            (user_id, key),
            IdempotencyRow(user_id, key, request_hash, "in_progress", owner, now, None, None, None),
        )

    async def sweep(self, expired_before: int) -> int:
        old = [
            k for k, r in self.rows.items() if r.state == "done" and r.locked_at < expired_before
        ]
        for k in old:
            del self.rows[k]
        return len(old)

    async def retake(
        self, user_id: str, key: str, stale_owner: str, owner: str, now: int
    ) -> IdempotencyRow | None:
        row = self.rows.get((user_id, key))
        if row is None or row.state != "in_progress" or row.owner_token != stale_owner:
            return None
        self.rows[(user_id, key)] = dataclasses.replace(row, owner_token=owner, locked_at=now)
        return self.rows[(user_id, key)]

    async def release(self, user_id: str, key: str, owner: str) -> None:
        row = self.rows.get((user_id, key))
        if row and row.state == "in_progress" and row.owner_token == owner and not row.payment_id:
            del self.rows[(user_id, key)]

    async def finish(self, user_id: str, key: str, status: int, body: str) -> IdempotencyRow | None:
        row = self.rows.get((user_id, key))
        if row is not None and row.state == "in_progress":
            row = dataclasses.replace(row, state="done", response_status=status, response_body=body)
            self.rows[(user_id, key)] = row
        return row

    def link(self, user_id: str, key: str, owner: str, payment_id: str) -> None:
        row = self.rows.get((user_id, key))
        if row is None or row.owner_token != owner or row.payment_id is not None:
            raise LostClaim(key)
        self.rows[(user_id, key)] = dataclasses.replace(row, payment_id=payment_id)


class MemoryLedger:
    def __init__(self, idempotency: MemoryIdempotency) -> None:
        self.idempotency = idempotency
        self.payments: dict[str, PaymentRow] = {}
        self.events: set[tuple[str, str]] = set()
        self.uncertain: set[str] = set()

    gig: GigRow | None = None  # the gig whose money amount_for sees

    async def create_pending(
        self, payment: NewPayment, key: str, owner: str, amount_for: AmountRule
    ) -> PaymentRow:
        money = None
        if self.gig is not None and self.gig.id == payment.gig_id:
            mine = [p for p in self.payments.values() if p.gig_id == payment.gig_id]
            money = GigMoney(
                self.gig.status,
                self.gig.details.fee_amount,
                self.gig.details.currency,
                sum(p.amount - p.refunded_amount for p in mine if p.status == "succeeded"),
                sum(p.amount for p in mine if p.status == "pending"),
            )
        amount = amount_for(money)
        self.idempotency.link(payment.user_id, key, owner, payment.id)
        row = PaymentRow(
            **dataclasses.asdict(payment),
            amount=amount,
            status="pending",
            transaction_id=None,
            failure_reason=None,
            updated_at=payment.created_at,
        )
        self.payments[row.id] = row
        return row

    async def payment(self, payment_id: str) -> PaymentRow | None:
        return self.payments.get(payment_id)

    async def mark_uncertain(
        self, payment_id: str, transaction_id: str | None, now: int
    ) -> PaymentRow | None:
        row = self.payments[payment_id]
        if row.status != "pending":
            return None
        self.uncertain.add(payment_id)
        return row

    async def clear_uncertain(self, payment_id: str) -> None:
        self.uncertain.discard(payment_id)

    async def record_refund(
        self, payment_id: str, refunded_total: int, now: int
    ) -> PaymentRow | None:
        row = self.payments[payment_id]
        if row.status not in ("succeeded", "partially_refunded"):
            return None
        if not row.refunded_amount < refunded_total <= row.amount:
            return None
        status = "refunded" if refunded_total == row.amount else "partially_refunded"
        self.payments[payment_id] = dataclasses.replace(
            row, refunded_amount=refunded_total, status=status, updated_at=now
        )
        return self.payments[payment_id]

    async def uncertain_payments(self, limit: int) -> list[PaymentRow]:
        return [self.payments[p] for p in sorted(self.uncertain)][:limit]

    async def attach_transaction(
        self, payment_id: str, transaction_id: str, now: int
    ) -> PaymentRow | None:
        row = self.payments[payment_id]
        if row.transaction_id not in (None, transaction_id):
            return None
        self.payments[payment_id] = dataclasses.replace(
            row, transaction_id=transaction_id, updated_at=now
        )
        return self.payments[payment_id]

    async def move_status(
        self,
        payment_id: str,
        status: str,
        allowed_from: Collection[str],
        *,
        transaction_id: str | None,
        reason: str | None,
        now: int,
    ) -> PaymentRow | None:
        row = self.payments[payment_id]
        if row.status not in allowed_from:
            return None
        self.uncertain.discard(payment_id)
        self.payments[payment_id] = dataclasses.replace(
            row,
            status=status,
            transaction_id=row.transaction_id or transaction_id,
            failure_reason=reason,
            updated_at=now,
        )
        return self.payments[payment_id]

    async def apply_webhook_event(
        self,
        *,
        gateway: str,
        event_id: str,
        kind: str,
        method: str,
        payment_id: str | None,
        transaction_id: str | None,
        status: str | None,
        allowed_from: Collection[str],
        reason: str | None,
        now: int,
        refunded_total: int | None = None,
    ) -> WebhookOutcome:
        if (gateway, event_id) in self.events:
            return WebhookOutcome(duplicate=True, payment=None, changed=False)
        self.events.add((gateway, event_id))
        found = next(
            (
                p
                for p in self.payments.values()
                if p.method == method and (p.id == payment_id or p.transaction_id == transaction_id)
            ),
            None,
        )
        if found is None or status is None:
            return WebhookOutcome(duplicate=False, payment=found, changed=False)
        moved = await self.move_status(
            found.id, status, allowed_from, transaction_id=transaction_id, reason=reason, now=now
        )
        return WebhookOutcome(duplicate=False, payment=moved or found, changed=moved is not None)

    async def ledger_page(
        self,
        user_id: str,
        *,
        gig_id: str | None,
        band_id: str | None,
        status: str | None,
        before: tuple[int, str] | None,
        limit: int,
    ) -> list[PaymentRow]:
        rows = sorted(
            (p for p in self.payments.values() if p.user_id == user_id),
            key=lambda p: (p.created_at, p.id),
            reverse=True,
        )
        if before is not None:
            rows = [p for p in rows if (p.created_at, p.id) < before]
        return rows[:limit]


def band_record() -> BandRecord:
    members = ((OWNER, "owner"), (ADMIN, "admin"), (MEMBER, "member"))
    return BandRecord(
        BandRow(BAND, "The Invoices", None, OWNER, "salt"),
        tuple(MemberRow(user, role, 0) for user, role in members),
    )


class Gigs:
    """``access_gig`` as ``GigService`` answers it, for one band and one gig."""

    def __init__(self, *, fee: int = 1000, currency: str = "EUR", status: str = "confirmed"):
        self.gig = GigRow(
            GIG,
            BAND,
            GigDetails("Paradiso", dt.date(2031, 6, 1), None, None, fee, currency, None, None),
            status,
            0,
            0,
        )
        self.band = band_record()
        self.covered: list[str] = []  # gigs the service asked to settle

    async def access_gig(self, user_id: str, gig_id: str) -> tuple[GigRow, BandRecord, str]:
        role = self.band.role_of(user_id)
        if gig_id != self.gig.id or role is None:
            raise NotFound("no such gig")
        return self.gig, self.band, role

    async def get(self, band_id: str) -> BandRecord | None:
        return self.band if band_id == BAND else None

    async def mark_paid_if_covered(self, gig_id: str, band: BandRecord) -> None:
        self.covered.append(gig_id)


class Deliveries:
    def __init__(self) -> None:
        self.sent: list[Delivery] = []

    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        self.sent.extend(deliveries)

    async def announce_presence(self, change: Any) -> None:
        raise AssertionError("payments announce no presence")

    async def revoke_presence(self, revoked: Any) -> None:
        raise AssertionError("payments revoke no presence")


class FakeGateway:
    """A gateway behind the port: answers ``result``, or raises ``failure``."""

    def __init__(self, method: PaymentMethod, name: GatewayName, result: ChargeResult) -> None:
        self._method, self._name = method, name
        self.result = result
        self.failure: Exception | None = None
        self.charges: list[tuple[ChargeRequest, bool]] = []
        self.found: ChargeResult | None = None  # what look_up finds
        self.look_up_failure: Exception | None = None
        self.looked_up: list[str] = []
        self.refunds: list[tuple[str, int, str]] = []

    @property
    def method(self) -> PaymentMethod:
        return self._method

    @property
    def name(self) -> GatewayName:
        return self._name

    @property
    def currencies(self) -> tuple[str, ...]:
        return ("EUR", "JPY") if self._method == "stripe" else ("EUR",)

    async def client_config(self) -> ClientConfig:
        return ClientConfig(publishable_key="pk_fake" if self._method == "stripe" else None)

    async def charge(self, charge: ChargeRequest, *, resumed: bool) -> ChargeResult:
        self.charges.append((charge, resumed))
        if self.failure is not None:
            raise self.failure
        return self.result

    async def client_secret(self, transaction_id: str) -> str | None:
        return f"{transaction_id}_secret" if self._method == "stripe" else None

    async def refund(self, payment: PaymentRow, amount: int, idempotency_key: str) -> None:
        self.refunds.append((payment.id, amount, idempotency_key))

    async def look_up(self, payment: PaymentRow) -> ChargeResult | None:
        self.looked_up.append(payment.id)
        if self.look_up_failure is not None:
            raise self.look_up_failure
        return self.found

    def verify_webhook(self, payload: str | bytes, signature: str | None) -> GatewayEvent:
        if signature != "good":
            raise InvalidPayload("bad signature")
        kind, _, transaction_id = str(payload).partition(":")
        fact = "succeeded" if kind == "settled" else None
        return GatewayEvent(f"evt-{payload!s}", kind, fact, None, transaction_id)

    async def close(self) -> None:
        pass


@dataclasses.dataclass
class World:
    service: PaymentService
    ledger: MemoryLedger
    idempotency: MemoryIdempotency
    stripe: FakeGateway
    paypal: FakeGateway
    fanout: Deliveries
    gigs: Gigs


def world(gigs: Gigs | None = None) -> World:
    clock = Clock()
    idempotency = MemoryIdempotency()
    ledger = MemoryLedger(idempotency)
    gigs = gigs or Gigs()
    ledger.gig = gigs.gig
    stripe = FakeGateway("stripe", "stripe", ChargeResult("pi_1", "pending", "pi_1_secret"))
    paypal = FakeGateway("paypal", "braintree", ChargeResult("sale_1", "succeeded"))
    fanout = Deliveries()
    service = PaymentService(
        ledger=ledger,
        idempotency=idempotency,
        splits=SplitService(splits=MemorySplits(), gigs=gigs, clock=clock),
        gigs=gigs,
        bands=gigs,
        gateways=[stripe, paypal],
        fanout=fanout,
        clock=clock,
        gateway_timeout_seconds=1,
        idempotency_stale_seconds=2,
        idempotency_wait_seconds=1,
    )
    return World(service, ledger, idempotency, stripe, paypal, fanout, gigs)


# At most once per key


def once(records: MemoryIdempotency, *, wait_seconds: int = 5) -> IdempotentRequests:
    return IdempotentRequests(
        records=records, clock=Clock(), stale_seconds=60, wait_seconds=wait_seconds
    )


async def test_an_attempt_runs_once_and_every_retry_gets_its_answer() -> None:
    runs = itertools.count(1)

    async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        return PaymentAnswer(201, {"run": next(runs)})

    requests = once(MemoryIdempotency())
    first = await requests.run_once("u", "k", "h", attempt)
    assert first == PaymentAnswer(201, {"run": 1})
    assert await requests.run_once("u", "k", "h", attempt) == first
    assert await requests.run_once("other", "k", "h", attempt) == PaymentAnswer(201, {"run": 2})
    with pytest.raises(IdempotencyMismatch):
        await requests.run_once("u", "k", "another body", attempt)


async def test_a_concurrent_retry_waits_for_the_first_answer() -> None:
    release, started, runs = asyncio.Event(), asyncio.Event(), []

    async def slow(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        runs.append(owner)
        started.set()
        await release.wait()
        return PaymentAnswer(402, {"error": "declined"})

    records = MemoryIdempotency()
    requests = once(records)
    first = asyncio.create_task(requests.run_once("u", "k", "h", slow))
    await asyncio.wait_for(started.wait(), 5)
    retry = asyncio.create_task(requests.run_once("u", "k", "h", slow))
    await asyncio.wait_for(records.found_busy.wait(), 5)
    assert not retry.done()  # it found the first one running: it waits, it does not run
    release.set()
    assert await first == await retry == PaymentAnswer(402, {"error": "declined"})
    assert len(runs) == 1


async def test_a_retry_that_waits_too_long_is_told_to_come_back() -> None:
    records = MemoryIdempotency()
    await records.claim("u", "k", "h", "someone else", Clock()())

    async def never(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        raise AssertionError("the owner is alive: nobody else runs")

    with pytest.raises(IdempotencyInProgress) as busy:
        await once(records, wait_seconds=0).run_once("u", "k", "h", never)
    assert busy.value.retryable


async def test_a_stale_owner_is_retaken_and_its_payment_reused() -> None:
    records = MemoryIdempotency()
    await records.claim("u", "k", "h", "dead", 0)
    records.link("u", "k", "dead", "payment-of-the-dead")
    seen: list[IdempotencyRow] = []

    async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        seen.append(record)
        return PaymentAnswer(201, {})

    assert await once(records).run_once("u", "k", "h", attempt) == PaymentAnswer(201, {})
    [taken] = seen
    assert taken.payment_id == "payment-of-the-dead" and taken.owner_token != "dead"


async def test_a_refused_request_leaves_its_key_free_and_a_lost_claim_says_retry() -> None:
    records = MemoryIdempotency()
    requests = once(records)

    async def refused(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        raise NotFound("no such gig")

    async def lost(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        raise LostClaim(record.key)

    with pytest.raises(NotFound):
        await requests.run_once("u", "k", "h", refused)
    assert records.rows == {}
    with pytest.raises(IdempotencyInProgress):
        await requests.run_once("u", "k2", "h", lost)


# One pay path


async def test_a_pending_charge_answers_the_client_secret_and_tells_the_managers() -> None:
    w = world()
    answer = await w.service.pay(MEMBER, "key-1", "stripe", PaymentRequest(GIG, 250, "EUR"))
    assert answer.status == 201
    created = PaymentCreated.model_validate(answer.body)
    assert created.clientSecret == "pi_1_secret"
    assert (created.payment.status, created.payment.transactionId) == ("pending", "pi_1")
    [(charge, resumed)] = w.stripe.charges
    assert (charge.idempotency_key, charge.payment_id, resumed) == (
        f"{MEMBER}:key-1",
        created.payment.id,
        False,
    )
    assert sorted(d.user_id for d in w.fanout.sent) == sorted([OWNER, ADMIN, MEMBER])
    for delivery in w.fanout.sent:
        PaymentUpdated.model_validate(delivery.payload)


async def test_a_sale_that_succeeds_at_once_is_succeeded_without_a_client_secret() -> None:
    w = world()
    request = PaymentRequest(GIG, 250, "EUR", nonce="nonce-1")
    answer = await w.service.pay(OWNER, "key-1", "paypal", request)
    assert answer.status == 201 and "clientSecret" not in answer.body
    assert answer.body["payment"]["status"] == "succeeded"
    assert w.paypal.charges[0][0].nonce == "nonce-1" and w.stripe.charges == []
    assert await w.service.pay(OWNER, "key-1", "paypal", request) == answer
    assert len(w.paypal.charges) == 1


async def test_a_declined_charge_fails_the_row_and_keeps_the_answer() -> None:
    w = world()
    w.stripe.failure = PaymentFailed("declined", details={"gateway": "stripe", "reason": "no"})
    answer = await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "EUR"))
    assert answer.status == 402 and answer.body["error"]["code"] == "payment_failed"
    assert answer.body["error"]["details"]["payment"]["status"] == "failed"
    [row] = w.ledger.payments.values()
    assert (row.status, row.failure_reason) == ("failed", "declined")
    w.stripe.failure = None
    assert await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "EUR")) == answer


async def test_a_stranger_is_told_what_a_missing_gig_is_told_and_nothing_is_kept() -> None:
    w = world()
    with pytest.raises(NotFound) as missing:
        await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG[:-1] + "1", 250, "EUR"))
    with pytest.raises(NotFound) as stranger:
        await w.service.pay(STRANGER, "k", "stripe", PaymentRequest(GIG, 250, "EUR"))
    assert stranger.value.as_error() == missing.value.as_error()
    assert w.ledger.payments == {} and w.idempotency.rows == {} and w.stripe.charges == []


async def test_a_cancelled_gig_or_another_currency_is_refused() -> None:
    w = world(Gigs(status="cancelled"))
    with pytest.raises(Conflict, match="cancelled"):
        await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "EUR"))
    w = world()
    with pytest.raises(Conflict) as currency:
        await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "JPY"))
    assert currency.value.details == {"currency": "EUR"}


async def test_a_currency_the_method_cannot_take_is_refused_before_anything_is_kept() -> None:
    w = world()
    with pytest.raises(CurrencyNotSupported) as refused:
        await w.service.pay(MEMBER, "k", "paypal", PaymentRequest(GIG, 250, "JPY", "n"))
    assert refused.value.http_status == 422 and refused.value.code == "currency_not_supported"
    assert refused.value.details == {"currency": "JPY", "currencies": ["EUR"]}
    assert w.ledger.payments == {} and w.idempotency.rows == {} and w.paypal.charges == []


async def test_the_hub_decides_the_amount_from_what_is_outstanding() -> None:
    w = world(Gigs(fee=1000))
    part = await w.service.pay(MEMBER, "k1", "stripe", PaymentRequest(GIG, 400, "EUR"))
    assert part.status == 201 and part.body["payment"]["amount"] == 400
    rest = await w.service.pay(ADMIN, "k2", "stripe", PaymentRequest(GIG, None, "EUR"))
    assert rest.status == 201 and rest.body["payment"]["amount"] == 600  # pending counts
    with pytest.raises(Conflict) as nothing_left:
        await w.service.pay(OWNER, "k3", "stripe", PaymentRequest(GIG, None, "EUR"))
    assert nothing_left.value.details == {"outstanding": 0}
    assert ("u-owner", "k3") not in w.idempotency.rows  # a refusal keeps no key


async def test_a_success_asks_the_gigs_to_settle_the_gig() -> None:
    w = world()
    await w.service.pay(OWNER, "k", "paypal", PaymentRequest(GIG, None, "EUR", "n"))
    assert w.gigs.covered == [GIG]


async def test_an_unanswered_charge_stays_pending_and_the_reconciler_settles_it() -> None:
    w = world()
    w.paypal.failure = OutcomeUnknown("ReadTimeoutError")
    request = PaymentRequest(GIG, 250, "EUR", "n")
    answer = await w.service.pay(MEMBER, "k", "paypal", request)
    assert answer.status == 202 and answer.body["retryable"] is False
    PaymentUncertain.model_validate(answer.body)
    payment_id = answer.body["payment"]["id"]
    assert answer.body["payment"]["status"] == "pending"
    assert await w.service.pay(MEMBER, "k", "paypal", request) == answer  # the key keeps it
    assert len(w.paypal.charges) == 1
    w.paypal.look_up_failure = GatewayUnavailable("no answer")
    assert await w.service.reconciler.reconcile_once() == 0  # still unknown: asked again next round
    assert w.ledger.payments[payment_id].status == "pending" and w.ledger.uncertain
    w.paypal.look_up_failure = None
    w.paypal.found = ChargeResult("sale_9", "succeeded")
    assert await w.service.reconciler.reconcile_once() == 1
    row = w.ledger.payments[payment_id]
    assert (row.status, row.transaction_id) == ("succeeded", "sale_9")
    assert not w.ledger.uncertain and await w.service.reconciler.reconcile_once() == 0
    assert [d.payload["payment"]["status"] for d in w.fanout.sent if d.user_id == MEMBER] == [
        "succeeded"
    ]


async def test_the_reconciler_fails_only_what_the_gateway_proves_was_not_charged() -> None:
    w = world()
    w.stripe.failure = OutcomeUnknown("APIError")
    never = await w.service.pay(MEMBER, "k1", "stripe", PaymentRequest(GIG, 100, "EUR"))
    declined = await w.service.pay(MEMBER, "k2", "stripe", PaymentRequest(GIG, 100, "EUR"))
    w.stripe.found = None  # the search finds no PaymentIntent for the first
    w.ledger.uncertain.discard(declined.body["payment"]["id"])
    assert await w.service.reconciler.reconcile_once() == 1
    assert w.ledger.payments[never.body["payment"]["id"]].status == "failed"
    w.ledger.uncertain.add(declined.body["payment"]["id"])
    w.stripe.look_up_failure = PaymentFailed("canceled", details={"gateway": "stripe"})
    assert await w.service.reconciler.reconcile_once() == 1
    assert w.ledger.payments[declined.body["payment"]["id"]].status == "failed"


async def test_refunds_are_for_managers_once_per_key_and_never_more_than_paid() -> None:
    w = world()
    paid = await w.service.pay(MEMBER, "k", "paypal", PaymentRequest(GIG, 600, "EUR", "n"))
    payment_id = paid.body["payment"]["id"]
    with pytest.raises(Forbidden):
        await w.service.refunds.refund(MEMBER, "r", payment_id, None)
    with pytest.raises(NotFound) as stranger:
        await w.service.refunds.refund(STRANGER, "r", payment_id, None)
    with pytest.raises(NotFound) as missing:
        await w.service.refunds.refund(OWNER, "r", "p-missing", None)
    assert stranger.value.as_error() == missing.value.as_error()
    part = await w.service.refunds.refund(ADMIN, "r1", payment_id, 200)
    assert (part.status, part.body["payment"]["status"]) == (200, "partially_refunded")
    assert await w.service.refunds.refund(ADMIN, "r1", payment_id, 200) == part
    with pytest.raises(Conflict) as too_much:
        await w.service.refunds.refund(OWNER, "r2", payment_id, 401)
    assert too_much.value.details == {"refundable": 400}
    rest = await w.service.refunds.refund(OWNER, "r3", payment_id, None)
    assert rest.body["payment"]["refundedAmount"] == 600
    assert rest.body["payment"]["status"] == "refunded"
    assert w.paypal.refunds == [
        (payment_id, 200, f"refund:{ADMIN}:r1"),
        (payment_id, 400, f"refund:{OWNER}:r3"),
    ]


async def test_a_resumed_request_reuses_the_row_and_tells_the_gateway() -> None:
    """A dead owner's record (stale, with its pending row): the retry charges that row, and
    the gateway is told it may have seen it (Braintree then looks its sale up)."""
    w = world()
    request = PaymentRequest(GIG, 250, "EUR", "n")
    fingerprint = request_fingerprint("paypal", payment_fields(GIG, 250, "EUR", "n"))
    await w.idempotency.claim(MEMBER, "k", fingerprint, "dead", 0)
    await w.ledger.create_pending(
        NewPayment("p-dead", GIG, BAND, MEMBER, "EUR", "paypal", 0), "k", "dead", lambda _: 250
    )
    answer = await w.service.pay(MEMBER, "k", "paypal", request)
    assert answer.body["payment"]["id"] == "p-dead" and len(w.ledger.payments) == 1
    [(charge, resumed)] = w.paypal.charges
    assert charge.payment_id == "p-dead" and resumed is True


async def test_methods_and_unconfigured_methods() -> None:
    w = world()
    assert MethodsView.model_validate(await w.service.methods()).model_dump(exclude_none=True) == {
        "methods": [
            {"method": "stripe", "currencies": ["EUR", "JPY"], "publishableKey": "pk_fake"},
            {"method": "paypal", "currencies": ["EUR"]},
        ]
    }
    bare = PaymentService(
        ledger=w.ledger,
        idempotency=w.idempotency,
        splits=w.service.splits,
        gigs=w.gigs,
        bands=w.gigs,
        gateways=[],
        fanout=w.fanout,
        clock=Clock(),
        gateway_timeout_seconds=1,
        idempotency_stale_seconds=2,
        idempotency_wait_seconds=1,
    )
    assert await bare.methods() == {"methods": []}
    with pytest.raises(GatewayUnavailable, match="PayPal"):
        await bare.pay(MEMBER, "k", "paypal", PaymentRequest(GIG, 1, "EUR", "n"))
    with pytest.raises(GatewayUnavailable, match="Stripe"):
        await bare.apply_webhook("stripe", b"{}", None)


def test_the_lease_must_outlast_the_gateway_call() -> None:
    w = world()
    with pytest.raises(ValueError):
        PaymentService(
            ledger=w.ledger,
            idempotency=w.idempotency,
            splits=w.service.splits,
            gigs=w.gigs,
            bands=w.gigs,
            gateways=[],
            fanout=w.fanout,
            clock=Clock(),
            gateway_timeout_seconds=30,
            idempotency_stale_seconds=30,
            idempotency_wait_seconds=1,
        )


# Webhooks and the ledger


async def test_a_webhook_moves_a_payment_once() -> None:
    w = world()
    await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "EUR"))
    w.fanout.sent.clear()
    with pytest.raises(InvalidPayload):
        await w.service.apply_webhook("stripe", "settled:pi_1", "forged")
    assert await w.service.apply_webhook("stripe", "settled:pi_1", "good") == {
        "received": True,
        "duplicate": False,
    }
    assert {d.payload["payment"]["status"] for d in w.fanout.sent} == {"succeeded"}
    w.fanout.sent.clear()
    assert (await w.service.apply_webhook("stripe", "settled:pi_1", "good"))["duplicate"]
    assert (await w.service.apply_webhook("stripe", "other:pi_1", "good")) == {
        "received": True,
        "duplicate": False,
    }
    assert w.fanout.sent == []


async def test_the_ledger_pages_with_opaque_cursors() -> None:
    w = world()
    for n in range(5):
        await w.service.pay(MEMBER, f"k{n}", "stripe", PaymentRequest(GIG, 100 + n, "EUR"))
        w.stripe.result = ChargeResult(f"pi_{n + 2}", "pending", "secret")
    seen: list[int] = []
    cursor = None
    while True:
        page = LedgerPage.model_validate(
            await w.service.ledger(
                MEMBER, gig_id=None, band_id=None, status=None, cursor=cursor, limit=2
            )
        )
        seen += [p.amount for p in page.items]
        if page.nextCursor is None:
            break
        cursor = page.nextCursor
    assert seen == [104, 103, 102, 101, 100]
    for bad in ("nonsense", "WyIxIiwibm90LWEtdXVpZCJd", "WyItMSIsIjAiXQ"):
        with pytest.raises(InvalidPayload):
            await w.service.ledger(
                MEMBER, gig_id=None, band_id=None, status=None, cursor=bad, limit=2
            )


# Splits


class MemorySplits:
    def __init__(self) -> None:
        self.saved: dict[str, SplitRow] = {}
        self.fee_moved = False

    async def save_split(
        self,
        gig_id: str,
        *,
        mode: str,
        total: int,
        currency: str,
        shares: Sequence[ShareRow],
        updated_by: str,
        now: int,
    ) -> SplitRow | None:
        if self.fee_moved:
            return None
        self.saved[gig_id] = SplitRow(
            gig_id,
            mode,
            total,
            currency,
            updated_by,
            now,
            tuple(sorted(shares, key=lambda s: s.user_id)),
        )
        return self.saved[gig_id]

    async def split(self, gig_id: str) -> SplitRow | None:
        return self.saved.get(gig_id)


async def test_splits_go_through_the_gig_and_band_access_rules() -> None:
    gigs, splits = Gigs(fee=1000), MemorySplits()
    service = SplitService(splits=splits, gigs=gigs, clock=Clock())
    with pytest.raises(NotFound, match="no such gig"):
        await service.set_split(STRANGER, GIG, "equal")
    with pytest.raises(NotFound, match="no such gig"):
        await service.split(STRANGER, GIG)
    with pytest.raises(Forbidden, match="owner or an admin"):
        await service.set_split(MEMBER, GIG, "equal")
    with pytest.raises(NotFound, match="not been split"):
        await service.split(MEMBER, GIG)
    made = SplitView.model_validate(await service.set_split(ADMIN, GIG, "equal"))
    assert [s.amount for s in made.shares] == [334, 333, 333] and not made.stale
    assert await service.split(MEMBER, GIG) == made.model_dump()
    gigs.gig = dataclasses.replace(
        gigs.gig, details=dataclasses.replace(gigs.gig.details, fee_amount=2000)
    )
    assert (await service.split(MEMBER, GIG))["stale"] is True
    given = [ShareRow(OWNER, 1500), ShareRow(MEMBER, 500)]
    assert (await service.set_split(OWNER, GIG, "shares", given))["mode"] == "shares"
    splits.fee_moved = True
    with pytest.raises(Conflict, match="changed meanwhile"):
        await service.set_split(OWNER, GIG, "equal")
    gigs.gig = dataclasses.replace(gigs.gig, status="cancelled")
    with pytest.raises(Conflict, match="cancelled"):
        await service.set_split(OWNER, GIG, "equal")


async def test_the_key_keeps_no_client_secret_and_a_replay_asks_the_gateway_again() -> None:
    w = world()
    first = await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "EUR"))
    assert first.body["clientSecret"] == "pi_1_secret"
    [record] = w.idempotency.rows.values()
    assert record.response_body is not None and "secret" not in record.response_body
    assert await w.service.pay(MEMBER, "k", "stripe", PaymentRequest(GIG, 250, "EUR")) == first


async def test_an_answered_key_past_its_retention_is_a_new_request_and_is_swept() -> None:
    records, clock = MemoryIdempotency(), Clock()
    requests = IdempotentRequests(
        records=records, clock=clock, stale_seconds=60, wait_seconds=5, retention_seconds=1
    )
    runs: list[str] = []

    async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
        runs.append(owner)
        return PaymentAnswer(201, {"run": len(runs)})

    assert (await requests.run_once("u", "k", "h", attempt)).body == {"run": 1}
    assert (await requests.run_once("u", "k", "h", attempt)).body == {"run": 1}
    clock.now += 1_001
    assert (await requests.run_once("u", "k", "h", attempt)).body == {"run": 2}
    assert await requests.sweep() == 0  # the new record is young
    clock.now += 1_001
    assert await requests.sweep() == 1 and records.rows == {}
