"""Gig payments: a ledger in integer minor units, charged at most once per Idempotency-Key,
settled by the gateways' signed webhooks exactly once; and how a gig's fee is split.

The flow of a payment POST: claim the (user, key) idempotency record → write the ledger row
``pending`` → call the gateway → store the answer on the record → answer. A retry replays the
stored answer, status code included; a concurrent retry waits for it (polling the record,
bounded); a record whose owner died mid-request (older than ``idempotency_stale_seconds``) is
retaken, and the retaker reuses the dead request's ledger row and gateway idempotency, so the
gateway never sees a second charge. The webhook then moves the row to its final status
through ``next_status``, a pure rule; every move is pushed as ``payment:updated``.

Gateway answers, decided once here (and in docs/protocol.md): the gateway declined the
payment → 402 ``payment_failed``; it refused the hub's own request (credentials, invalid
request) → 502 ``gateway_error``; it did not answer → 503 ``unavailable``. In all three the
row is ``failed`` and the answer is kept for the key: a new attempt takes a new key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from hub.clock import Clock
from hub.errors import (
    Conflict,
    Forbidden,
    GatewayRefused,
    GatewayUnavailable,
    HubError,
    IdempotencyInProgress,
    IdempotencyMismatch,
    InvalidPayload,
    NotFound,
    PaymentFailed,
)
from hub.fanout import Delivery, Fanout
from storage.sql.payments import (
    GigForPayment,
    IdempotencyRow,
    LostClaim,
    NewPayment,
    PaymentRow,
    PaymentStore,
    ShareRow,
    SplitRow,
)

log = logging.getLogger(__name__)

Share = ShareRow  # what the transports may name: one member's part of a gig's fee

MAX_PAYMENT_AMOUNT = 99_999_999  # Stripe's ceiling in minor units (999,999.99 in EUR)
MAX_SPLIT_SHARES = 500

PaymentMethod = Literal["stripe", "paypal"]
PaymentStatus = Literal["pending", "succeeded", "failed", "refunded"]
SplitMode = Literal["equal", "shares"]
GatewayName = Literal["stripe", "braintree"]
# What a gateway says happened to a payment; ``next_status`` turns it into a ledger move.
GatewayFact = Literal["succeeded", "failed", "refunded", "settlement_declined"]
IdempotencyVerdict = Literal["run", "replay", "mismatch", "wait", "retake"]

# fact → (the status it moves to, the statuses it may move from). Anything else is no move:
# that is what makes a late or out-of-order webhook harmless.
# - succeeded: also from failed, since a Stripe PaymentIntent may fail one attempt and then
#   succeed with another payment method.
# - failed: only from pending; a failed attempt reported after success changes nothing.
# - refunded: also from pending, in case the refund's event overtakes the success's.
# - settlement_declined: Braintree reverses a sale it had accepted (succeeded → failed).
TRANSITIONS: Mapping[GatewayFact, tuple[PaymentStatus, frozenset[str]]] = {
    "succeeded": ("succeeded", frozenset({"pending", "failed"})),
    "failed": ("failed", frozenset({"pending"})),
    "refunded": ("refunded", frozenset({"pending", "succeeded"})),
    "settlement_declined": ("failed", frozenset({"pending", "succeeded"})),
}
GATEWAY_ERRORS = (PaymentFailed, GatewayRefused, GatewayUnavailable)
_CURSOR = re.compile(r"^(\d{1,19})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def next_status(current: str, fact: GatewayFact) -> PaymentStatus | None:
    """The status a payment moves to when its gateway reports ``fact``, or None for no move."""
    target, allowed = TRANSITIONS[fact]
    return target if current in allowed else None


def idempotency_verdict(
    record: IdempotencyRow, request_hash: str, owner: str, now: int, stale_after_ms: int
) -> IdempotencyVerdict:
    """What a request holding ``owner`` does with the record it found for its key."""
    if record.request_hash != request_hash:
        return "mismatch"
    if record.state == "done":
        return "replay"
    if record.owner_token == owner:
        return "run"
    if now - record.locked_at >= stale_after_ms:
        return "retake"
    return "wait"


def request_fingerprint(method: PaymentMethod, fields: Mapping[str, Any]) -> str:
    """A stable hash of what was asked, so the same key with another body is caught."""
    canonical = orjson.dumps({"method": method, **fields}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def equal_split(total: int, member_ids: Sequence[str]) -> list[ShareRow]:
    """Everyone gets ``total // n``; the remainder goes one minor unit each to the first
    members in user-id order, so the same band and fee always split the same way and the
    shares add up to ``total`` exactly."""
    ordered = sorted(set(member_ids))
    if not ordered:
        raise Conflict("the band has no members to split the fee among")
    base, rest = divmod(total, len(ordered))
    return [ShareRow(user, base + (1 if i < rest else 0)) for i, user in enumerate(ordered)]


def checked_shares(total: int, member_ids: Sequence[str], shares: Sequence[ShareRow]) -> None:
    """Raise unless each share names a distinct current member and they add up to ``total``."""
    named = [s.user_id for s in shares]
    if len(set(named)) != len(named):
        raise InvalidPayload("each member may have one share only")
    strangers = sorted(set(named) - set(member_ids))
    if strangers:
        raise Conflict(
            "shares may go only to the band's members", details={"notMembers": strangers}
        )
    given = sum(s.amount for s in shares)
    if given != total:
        raise Conflict(
            f"the shares add up to {given}, the gig's fee is {total}",
            details={"fee": total, "sum": given},
        )


def payment_view(payment: PaymentRow) -> dict[str, Any]:
    return {
        "id": payment.id,
        "gigId": payment.gig_id,
        "bandId": payment.band_id,
        "userId": payment.user_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "method": payment.method,
        "status": payment.status,
        "transactionId": payment.transaction_id,
        "failureReason": payment.failure_reason,
        "createdAt": payment.created_at,
        "updatedAt": payment.updated_at,
    }


def split_view(split: SplitRow, gig: GigForPayment) -> dict[str, Any]:
    """``stale``: the gig's fee or currency changed since the split was made."""
    return {
        "gigId": split.gig_id,
        "mode": split.mode,
        "total": split.total,
        "currency": split.currency,
        "stale": split.total != gig.fee_amount or split.currency != gig.currency,
        "shares": [{"userId": s.user_id, "amount": s.amount} for s in split.shares],
        "updatedBy": split.updated_by,
        "updatedAt": split.updated_at,
    }


def _uuid_or_none(value: object) -> str | None:
    return value.lower() if isinstance(value, str) and _UUID.match(value) else None


# What the gateways must offer; hub/payment_gateways.py adapts the official libraries.


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One charge as a gateway sees it. ``idempotency_key`` is already scoped to the user,
    and ``payment_id`` (our ledger row) travels with it as metadata / order id."""

    payment_id: str
    gig_id: str
    user_id: str
    amount: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class IntentCreated:
    transaction_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class SaleResult:
    """``succeeded``: the gateway accepted and submitted the sale; ``pending``: it has not
    decided yet (a webhook will)."""

    transaction_id: str
    status: Literal["succeeded", "pending"]


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A verified webhook event. ``fact`` None: acknowledged, moves nothing."""

    event_id: str
    kind: str
    fact: GatewayFact | None
    payment_id: str | None
    transaction_id: str | None
    reason: str | None = None


class StripeGateway(Protocol):
    @property
    def publishable_key(self) -> str: ...

    async def create_intent(self, charge: ChargeRequest) -> IntentCreated:
        """Raises PaymentFailed, GatewayRefused or GatewayUnavailable."""

    def verify_event(self, payload: bytes, signature: str | None) -> GatewayEvent:
        """Raises InvalidPayload unless ``Stripe-Signature`` matches the payload."""

    async def close(self) -> None: ...


class BraintreeGateway(Protocol):
    async def sale(self, charge: ChargeRequest, nonce: str) -> SaleResult:
        """Raises PaymentFailed (with ``transactionId`` in details when Braintree made one),
        GatewayRefused or GatewayUnavailable."""

    async def find_sale(self, payment_id: str) -> SaleResult | None:
        """The sale made for our ledger row (its order id), if Braintree has one."""

    async def client_token(self) -> str: ...

    def verify_notification(self, signature: str, payload: str) -> GatewayEvent:
        """Raises InvalidPayload unless ``bt_signature`` matches ``bt_payload``."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    gig_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """What a payment POST answers, and what its key replays: ``status`` is the HTTP status
    (201, or the error's), ``body`` the JSON object, stored byte for byte."""

    status: int
    body: dict[str, Any]


Attempt = Callable[[IdempotencyRow, str], Awaitable[PaymentAnswer]]


class PaymentService:
    def __init__(
        self,
        *,
        payments: PaymentStore,
        stripe: StripeGateway | None,
        braintree: BraintreeGateway | None,
        fanout: Fanout,
        clock: Clock,
        gateway_timeout_seconds: int,
        idempotency_stale_seconds: int,
        idempotency_wait_seconds: int,
    ) -> None:
        if idempotency_stale_seconds <= gateway_timeout_seconds:
            # A record may be retaken only once its owner's gateway call has surely ended.
            raise ValueError(
                "PAYMENT_IDEMPOTENCY_STALE_SECONDS must exceed PAYMENT_GATEWAY_TIMEOUT_SECONDS"
            )
        self._payments = payments
        self._stripe = stripe
        self._braintree = braintree
        self._fanout = fanout
        self._clock = clock
        self._stale_ms = idempotency_stale_seconds * 1000
        self._wait_ms = idempotency_wait_seconds * 1000

    # What the hub offers

    async def methods(self) -> list[dict[str, Any]]:
        """The configured methods, with what the app needs to use them."""
        offered: list[dict[str, Any]] = []
        if self._stripe is not None:
            stripe_entry: dict[str, Any] = {"method": "stripe"}
            if self._stripe.publishable_key:
                stripe_entry["publishableKey"] = self._stripe.publishable_key
            offered.append(stripe_entry)
        if self._braintree is not None:
            paypal_entry: dict[str, Any] = {"method": "paypal"}
            try:
                paypal_entry["clientToken"] = await self._braintree.client_token()
            except GATEWAY_ERRORS as exc:
                paypal_entry["clientToken"] = None
                paypal_entry["error"] = exc.as_error()
            offered.append(paypal_entry)
        return offered

    # Paying

    async def pay_with_stripe(
        self, user_id: str, key: str, request: PaymentRequest
    ) -> PaymentAnswer:
        """Create a Stripe PaymentIntent for the gig; the app confirms it with the client
        secret, and Stripe's webhook settles the row."""
        stripe = self._stripe
        if stripe is None:
            raise GatewayUnavailable(
                "Stripe is not configured on this hub", details={"method": "stripe"}
            )
        fingerprint = request_fingerprint(
            "stripe",
            {"gigId": request.gig_id, "amount": request.amount, "currency": request.currency},
        )

        async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
            payment = await self._pending_payment(record, owner, user_id, "stripe", request)
            try:
                intent = await stripe.create_intent(self._charge(payment, key))
            except GATEWAY_ERRORS as exc:
                return await self._failed(payment, exc)
            attached = await self._payments.attach_transaction(
                payment.id, intent.transaction_id, self._clock()
            )
            if attached is None:
                raise RuntimeError(f"payment {payment.id} already has another PaymentIntent")
            await self._announce(attached)
            return PaymentAnswer(
                201, {"payment": payment_view(attached), "clientSecret": intent.client_secret}
            )

        return await self._once(user_id, key, fingerprint, attempt)

    async def pay_with_paypal(
        self, user_id: str, key: str, request: PaymentRequest, nonce: str
    ) -> PaymentAnswer:
        """Sell through Braintree with the app's PayPal nonce, submitted for settlement: its
        answer is final at once (succeeded or failed); webhooks only correct it later."""
        braintree = self._braintree
        if braintree is None:
            raise GatewayUnavailable(
                "PayPal (Braintree) is not configured on this hub", details={"method": "paypal"}
            )
        fingerprint = request_fingerprint(
            "paypal",
            {
                "gigId": request.gig_id,
                "amount": request.amount,
                "currency": request.currency,
                "nonce": nonce,
            },
        )

        async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
            payment = await self._pending_payment(record, owner, user_id, "paypal", request)
            try:
                # A retaken request's owner may have sold already: Braintree has no
                # idempotency key, so look for the sale by its order id first.
                sale = await braintree.find_sale(payment.id) if record.payment_id else None
                if sale is None:
                    sale = await braintree.sale(self._charge(payment, key), nonce)
            except GATEWAY_ERRORS as exc:
                return await self._failed(payment, exc)
            now = self._clock()
            if sale.status == "succeeded":
                target, allowed = TRANSITIONS["succeeded"]
                moved = await self._payments.move_status(
                    payment.id,
                    target,
                    allowed,
                    transaction_id=sale.transaction_id,
                    reason=None,
                    now=now,
                )
            else:
                moved = await self._payments.attach_transaction(
                    payment.id, sale.transaction_id, now
                )
            if moved is not None:
                await self._announce(moved)
            current = moved or await self._payments.payment(payment.id) or payment
            return PaymentAnswer(201, {"payment": payment_view(current)})

        return await self._once(user_id, key, fingerprint, attempt)

    def _charge(self, payment: PaymentRow, key: str) -> ChargeRequest:
        return ChargeRequest(
            payment_id=payment.id,
            gig_id=payment.gig_id,
            user_id=payment.user_id,
            amount=payment.amount,
            currency=payment.currency,
            # Keys are ours per user; at the gateway they share one namespace.
            idempotency_key=f"{payment.user_id}:{key}",
        )

    async def _pending_payment(
        self,
        record: IdempotencyRow,
        owner: str,
        user_id: str,
        method: PaymentMethod,
        request: PaymentRequest,
    ) -> PaymentRow:
        """The ledger row of this key: the one a dead owner left, or a new pending one."""
        if record.payment_id is not None:
            existing = await self._payments.payment(record.payment_id)
            if existing is not None:
                return existing
        gig = await self._payable_gig(user_id, request)
        return await self._payments.create_pending(
            NewPayment(
                id=str(uuid.uuid4()),
                gig_id=gig.id,
                band_id=gig.band_id,
                user_id=user_id,
                amount=request.amount,
                currency=request.currency,
                method=method,
                created_at=self._clock(),
            ),
            record.key,
            owner,
        )

    async def _payable_gig(self, user_id: str, request: PaymentRequest) -> GigForPayment:
        gig = await self._payments.gig(request.gig_id)
        if gig is None:
            raise NotFound("no such gig")
        if await self._payments.member_role(gig.band_id, user_id) is None:
            raise Forbidden("only members of the gig's band may pay for it")
        if gig.status == "cancelled":
            raise Conflict("the gig is cancelled")
        if request.currency != gig.currency:
            raise Conflict(
                f"the gig's fee is in {gig.currency}", details={"currency": gig.currency}
            )
        return gig

    async def _failed(
        self, payment: PaymentRow, exc: PaymentFailed | GatewayRefused | GatewayUnavailable
    ) -> PaymentAnswer:
        """The gateway said no, or nothing: the row is failed and the answer says why."""
        target, allowed = TRANSITIONS["failed"]
        transaction_id = (exc.details or {}).get("transactionId")
        moved = await self._payments.move_status(
            payment.id,
            target,
            allowed,
            transaction_id=transaction_id if isinstance(transaction_id, str) else None,
            reason=exc.message,
            now=self._clock(),
        )
        if moved is not None:
            await self._announce(moved)
        current = moved or await self._payments.payment(payment.id) or payment
        error = exc.as_error()
        error["details"] = {**(exc.details or {}), "payment": payment_view(current)}
        return PaymentAnswer(exc.http_status, {"error": error})

    # Idempotency

    async def _once(
        self, user_id: str, key: str, fingerprint: str, attempt: Attempt
    ) -> PaymentAnswer:
        """Run ``attempt`` at most once per (user, key), across nodes; every other request
        with the key gets the stored answer, waiting for it while it is being made."""
        owner = uuid.uuid4().hex
        deadline = self._clock() + self._wait_ms
        pause = 0.05
        while True:
            now = self._clock()
            record = await self._payments.claim_idempotency(user_id, key, fingerprint, owner, now)
            if record is None:
                continue  # released between insert and select: claim again
            verdict = idempotency_verdict(record, fingerprint, owner, now, self._stale_ms)
            if verdict == "mismatch":
                raise IdempotencyMismatch(
                    "this Idempotency-Key was used for a different request; use a new key"
                )
            if verdict == "replay":
                return _replay(record)
            if verdict == "retake":
                taken = await self._payments.retake_idempotency(
                    user_id, key, record.owner_token, owner, now
                )
                if taken is None:
                    continue
                log.warning("payment request of user %s retaken from a stale owner", user_id)
                return await self._run(taken, owner, attempt)
            if verdict == "run":
                return await self._run(record, owner, attempt)
            if now >= deadline:
                raise IdempotencyInProgress(
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def _run(self, record: IdempotencyRow, owner: str, attempt: Attempt) -> PaymentAnswer:
        try:
            answer = await attempt(record, owner)
        except LostClaim:
            raise IdempotencyInProgress(
                "a request with this Idempotency-Key is still being processed; retry shortly"
            ) from None
        except HubError:
            # Refused before any payment was made (no such gig, not a member…): nothing to
            # remember, so the key stays free, as for a request that failed validation.
            await self._payments.release_idempotency(record.user_id, record.key, owner)
            raise
        body = orjson.dumps(answer.body).decode()
        stored = await self._payments.finish_idempotency(
            record.user_id, record.key, answer.status, body
        )
        return answer if stored is None else _replay(stored)

    # Webhooks

    async def apply_stripe_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        if self._stripe is None:
            raise GatewayUnavailable("Stripe is not configured on this hub")
        event = self._stripe.verify_event(payload, signature)
        return await self._apply(event, "stripe", "stripe")

    async def apply_braintree_notification(self, signature: str, payload: str) -> dict[str, Any]:
        if self._braintree is None:
            raise GatewayUnavailable("PayPal (Braintree) is not configured on this hub")
        event = self._braintree.verify_notification(signature, payload)
        return await self._apply(event, "braintree", "paypal")

    async def _apply(
        self, event: GatewayEvent, gateway: GatewayName, method: PaymentMethod
    ) -> dict[str, Any]:
        """Record the event and move its payment, once: a replay finds the event recorded."""
        target, allowed = TRANSITIONS[event.fact] if event.fact else (None, frozenset[str]())
        outcome = await self._payments.apply_webhook_event(
            gateway=gateway,
            event_id=event.event_id,
            kind=event.kind,
            method=method,
            payment_id=_uuid_or_none(event.payment_id),
            transaction_id=event.transaction_id,
            status=target,
            allowed_from=allowed,
            reason=event.reason,
            now=self._clock(),
        )
        if outcome.changed and outcome.payment is not None:
            await self._announce(outcome.payment)
        return {"received": True, "duplicate": outcome.duplicate}

    async def _announce(self, payment: PaymentRow) -> None:
        """``payment:updated`` to the band's owner and admins, and to the payer. The change is
        committed already: a failed push is logged, never undone."""
        try:
            managers = await self._payments.band_manager_ids(payment.band_id)
            payload = {"payment": payment_view(payment)}
            await self._fanout.deliver(
                [
                    Delivery(user, "payment:updated", payload)
                    for user in sorted({*managers, payment.user_id})
                ]
            )
        except Exception:
            log.warning("payment:updated for %s not pushed", payment.id, exc_info=True)

    # The ledger

    async def ledger(
        self,
        user_id: str,
        *,
        gig_id: str | None,
        band_id: str | None,
        status: PaymentStatus | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The user's own payments, newest first, a page at a time."""
        before: tuple[int, str] | None = None
        if cursor is not None:
            match = _CURSOR.match(cursor)
            if match is None:
                raise InvalidPayload("cursor: pass back the nextCursor of the previous page")
            before = (int(match.group(1)), match.group(2))
        rows = await self._payments.ledger_page(
            user_id, gig_id=gig_id, band_id=band_id, status=status, before=before, limit=limit + 1
        )
        page = rows[:limit]
        next_cursor = f"{page[-1].created_at}_{page[-1].id}" if len(rows) > limit else None
        return [payment_view(p) for p in page], next_cursor

    # Splits

    async def set_split(
        self,
        user_id: str,
        gig_id: str,
        mode: SplitMode,
        shares: Sequence[ShareRow] = (),
    ) -> dict[str, Any]:
        """Split the gig's fee among the band's members (owner or admin only): equally, or as
        given shares that add up to the fee exactly. Replaces any earlier split."""
        gig = await self._payments.gig(gig_id)
        if gig is None:
            raise NotFound("no such gig")
        role = await self._payments.member_role(gig.band_id, user_id)
        if role is None:
            raise NotFound("no such gig")  # a stranger cannot tell a gig from a missing one
        if role not in ("owner", "admin"):
            raise Forbidden("only the band's owner or an admin may split a gig's fee")
        if gig.status == "cancelled":
            raise Conflict("the gig is cancelled")
        members = await self._payments.band_member_ids(gig.band_id)
        if mode == "equal":
            rows = equal_split(gig.fee_amount, members)
        else:
            checked_shares(gig.fee_amount, members, shares)
            rows = list(shares)
        saved = await self._payments.save_split(
            gig.id,
            mode=mode,
            total=gig.fee_amount,
            currency=gig.currency,
            shares=rows,
            updated_by=user_id,
            now=self._clock(),
        )
        if saved is None:
            raise Conflict("the gig's fee changed meanwhile; split it again")
        return split_view(saved, gig)

    async def split(self, user_id: str, gig_id: str) -> dict[str, Any]:
        gig = await self._payments.gig(gig_id)
        if gig is None:
            raise NotFound("no such gig")
        if await self._payments.member_role(gig.band_id, user_id) is None:
            raise NotFound("no such gig")  # a stranger cannot tell a gig from a missing one
        split = await self._payments.split(gig.id)
        if split is None:
            raise NotFound("this gig's fee has not been split yet")
        return split_view(split, gig)


def _replay(record: IdempotencyRow) -> PaymentAnswer:
    assert record.response_status is not None and record.response_body is not None
    body = orjson.loads(record.response_body)
    return PaymentAnswer(record.response_status, body)
