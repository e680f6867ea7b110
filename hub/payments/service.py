"""Gig payments: a ledger in integer minor units, charged at most once per Idempotency-Key,
settled by the gateways' signed webhooks exactly once.

One pay path for every method: check the method takes the currency → claim the key
(``hub.payments.idempotency``) → check the gig through the gigs' access rule (a stranger
gets ``not_found``, as for a gig that does not exist) → decide the amount from what is
outstanding and write the ledger row ``pending``, under the gig's lock → charge through the
method's gateway port → record what the gateway made of it → answer. The webhook then moves
the row to its final status through ``hub.payments.rules.transition``; every move is pushed
as ``payment:updated`` (``hub.payments.moves``).

Gateway answers, decided once here (and in docs/protocol.md): the gateway declined the
payment → 402 ``payment_failed``; it refused the hub's own request (credentials, invalid
request, a sale in the wrong currency) → 502 ``gateway_error``; it surely never got the
request → 503 ``unavailable``. In all three the row is ``failed`` and the answer is kept for
the key: a new attempt takes a new key. A charge that may have reached the gateway without an
answer stays ``pending`` (202, ``retryable: false``) for ``hub.payments.reconciler``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

from hub.clock import Clock
from hub.errors import (
    CurrencyNotSupported,
    GatewayRefused,
    GatewayUnavailable,
    InvalidPayload,
    PaymentFailed,
)
from hub.fanout import Fanout
from hub.payments.idempotency import IdempotentRequests, PaymentAnswer
from hub.payments.moves import LedgerMoves
from hub.payments.ports import (
    BandRecords,
    ChargeRequest,
    GigAccess,
    IdempotencyRecords,
    Lease,
    Ledger,
    OutcomeUnknown,
    PaymentGateway,
)
from hub.payments.reconciler import Reconciler
from hub.payments.refunds import RefundService
from hub.payments.rules import (
    PaymentMethod,
    PaymentStatus,
    payment_amount,
    payment_fields,
    request_fingerprint,
    transition,
)
from hub.payments.splits import SplitService
from hub.payments.views import (
    ledger_page,
    method_view,
    methods_view,
    payment_created,
    payment_uncertain,
    webhook_ack,
)
from hub.protocol.cursors import decode_cursor, page_of
from hub.protocol.fields import parse_uuid
from storage.sql.payments import NewPayment, PaymentRow
from storage.sql.payments_idempotency import IdempotencyRow

log = logging.getLogger(__name__)

GATEWAY_ERRORS = (PaymentFailed, GatewayRefused, GatewayUnavailable)
# How the hub names a method's gateway when it is not configured.
GATEWAY_LABELS: Mapping[PaymentMethod, str] = {"stripe": "Stripe", "paypal": "PayPal (Braintree)"}
MAX_LEDGER_CREATED_AT = 2**63 - 1  # bigint


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A payment as the app asks for it; ``nonce`` for the methods that sell with one."""

    gig_id: str
    amount: int | None  # None: the whole outstanding amount
    currency: str
    nonce: str | None = None


class PaymentService:
    def __init__(
        self,
        *,
        ledger: Ledger,
        idempotency: IdempotencyRecords,
        splits: SplitService,
        gigs: GigAccess,
        bands: BandRecords,
        gateways: Iterable[PaymentGateway],
        fanout: Fanout,
        clock: Clock,
        gateway_timeout_seconds: int,
        idempotency_stale_seconds: int,
        idempotency_wait_seconds: int,
        reconcile_lease: Lease | None = None,
        reconcile_seconds: int = 60,
        idempotency_retention_seconds: int = 86_400,
    ) -> None:
        if idempotency_stale_seconds <= gateway_timeout_seconds:
            # A record may be retaken only once its owner's gateway call has surely ended.
            raise ValueError(
                "PAYMENT_IDEMPOTENCY_STALE_SECONDS must exceed PAYMENT_GATEWAY_TIMEOUT_SECONDS"
            )
        self.splits = splits
        self._ledger = ledger
        self._gigs = gigs
        self._bands = bands
        self._gateways = {gateway.method: gateway for gateway in gateways}
        self._fanout = fanout
        self._clock = clock
        self._once = IdempotentRequests(
            records=idempotency,
            clock=clock,
            stale_seconds=idempotency_stale_seconds,
            wait_seconds=idempotency_wait_seconds,
            retention_seconds=idempotency_retention_seconds,
        )
        self._moves = LedgerMoves(ledger=ledger, gigs=gigs, bands=bands, fanout=fanout, clock=clock)
        self.refunds = RefundService(
            ledger=ledger,
            gigs=gigs,
            gateways=self._gateways,
            moves=self._moves,
            once=self._once,
            clock=clock,
        )
        self.reconciler = Reconciler(
            ledger=ledger,
            moves=self._moves,
            gateways=self._gateways,
            lease=reconcile_lease,
            interval_seconds=reconcile_seconds,
            sweep=self._once.sweep,
        )

    # What the hub offers

    async def methods(self) -> dict[str, Any]:
        """The configured methods, with what the app needs to use them."""
        offered: list[dict[str, Any]] = []
        for method, gateway in self._gateways.items():
            try:
                config = await gateway.client_config()
                offered.append(method_view(method, gateway.currencies, config))
            except GATEWAY_ERRORS as exc:
                offered.append(method_view(method, gateway.currencies, None, error=exc.as_error()))
        return methods_view(offered)

    # Paying

    async def pay(
        self, user_id: str, key: str, method: PaymentMethod, request: PaymentRequest
    ) -> PaymentAnswer:
        """Charge the gig's fee share once per (user, key) through ``method``'s gateway."""
        gateway = self._gateway(method, details={"method": method})
        if request.currency not in gateway.currencies:
            # Refused before the key is claimed or any row written.
            raise CurrencyNotSupported(
                f"{GATEWAY_LABELS[method]} cannot take {request.currency} on this hub",
                details={"currency": request.currency, "currencies": list(gateway.currencies)},
            )
        fingerprint = request_fingerprint(
            method, payment_fields(request.gig_id, request.amount, request.currency, request.nonce)
        )

        async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
            payment = await self._pending_payment(record, owner, user_id, method, request)
            try:
                result = await gateway.charge(
                    self._charge(payment, key, request.nonce),
                    resumed=record.payment_id is not None,
                )
            except GATEWAY_ERRORS as exc:
                return await self._moves.failed(payment, exc)
            except OutcomeUnknown as unknown:
                return await self._uncertain(payment, unknown)
            current = await self._moves.record_charge(payment, result)
            if result.client_secret is not None:
                secrets[current.id] = result.client_secret
            # The answer kept for the key holds no client secret: it is fetched again.
            return PaymentAnswer(201, payment_created(current, None))

        secrets: dict[str, str] = {}
        answer = await self._once.run_once(user_id, key, fingerprint, attempt)
        return await self._with_client_secret(gateway, answer, secrets)

    async def _with_client_secret(
        self, gateway: PaymentGateway, answer: PaymentAnswer, secrets: dict[str, str]
    ) -> PaymentAnswer:
        """A pending charge's answer with the secret the app confirms it with: the one just
        made, or for a replay the one the gateway gives again for the PaymentIntent."""
        payment = answer.body.get("payment")
        if answer.status != 201 or not isinstance(payment, dict):
            return answer
        secret = secrets.get(str(payment.get("id")))
        transaction_id = payment.get("transactionId")
        if secret is None and isinstance(transaction_id, str):
            secret = await gateway.client_secret(transaction_id)
        if secret is None:
            return answer
        return PaymentAnswer(answer.status, {**answer.body, "clientSecret": secret})

    def _gateway(self, method: PaymentMethod, details: dict[str, Any] | None) -> PaymentGateway:
        gateway = self._gateways.get(method)
        if gateway is None:
            raise GatewayUnavailable(
                f"{GATEWAY_LABELS[method]} is not configured on this hub", details=details
            )
        return gateway

    def _charge(self, payment: PaymentRow, key: str, nonce: str | None) -> ChargeRequest:
        return ChargeRequest(
            payment_id=payment.id,
            gig_id=payment.gig_id,
            user_id=payment.user_id,
            amount=payment.amount,
            currency=payment.currency,
            # Keys are ours per user; at the gateway they share one namespace.
            idempotency_key=f"{payment.user_id}:{key}",
            nonce=nonce,
        )

    async def _pending_payment(
        self,
        record: IdempotencyRow,
        owner: str,
        user_id: str,
        method: PaymentMethod,
        request: PaymentRequest,
    ) -> PaymentRow:
        """The ledger row of this key: the one a dead owner left, or a new pending one for a
        gig the user may pay for."""
        if record.payment_id is not None:
            existing = await self._ledger.payment(record.payment_id)
            if existing is not None:
                return existing
        gig, _, _ = await self._gigs.access_gig(user_id, request.gig_id)
        return await self._ledger.create_pending(
            NewPayment(
                id=str(uuid.uuid4()),
                gig_id=gig.id,
                band_id=gig.band_id,
                user_id=user_id,
                currency=request.currency,
                method=method,
                created_at=self._clock(),
            ),
            record.key,
            owner,
            lambda money: payment_amount(money, request.amount, request.currency),
        )

    async def _uncertain(self, payment: PaymentRow, unknown: OutcomeUnknown) -> PaymentAnswer:
        """The gateway may have charged without answering: the row stays ``pending`` for the
        reconciler, and the answer (kept for the key) says not to pay again."""
        log.warning("payment %s: outcome unknown (%s), left to the reconciler", payment.id, unknown)
        marked = await self._ledger.mark_uncertain(
            payment.id, unknown.transaction_id, self._clock()
        )
        current = marked or await self._ledger.payment(payment.id) or payment
        return PaymentAnswer(202, payment_uncertain(current))

    # Webhooks

    async def apply_webhook(
        self, method: PaymentMethod, payload: str | bytes, signature: str | None
    ) -> dict[str, Any]:
        """Verify the gateway's event, record it and move its payment, once: a replay finds
        the event recorded and changes nothing."""
        gateway = self._gateway(method, details=None)
        event = gateway.verify_webhook(payload, signature)
        target, allowed = transition(event.fact)
        outcome = await self._ledger.apply_webhook_event(
            gateway=gateway.name,
            event_id=event.event_id,
            kind=event.kind,
            method=method,
            payment_id=_uuid_or_none(event.payment_id),
            transaction_id=event.transaction_id,
            status=target,
            allowed_from=allowed,
            reason=event.reason,
            now=self._clock(),
            refunded_total=event.refunded_total,
        )
        if outcome.changed and outcome.payment is not None:
            await self._moves.announce(outcome.payment)
        return webhook_ack(outcome.duplicate)

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
    ) -> dict[str, Any]:
        """The user's own payments, newest first, a page at a time."""
        before = None if cursor is None else _ledger_position(*decode_cursor(cursor, 2))
        rows = await self._ledger.ledger_page(
            user_id, gig_id=gig_id, band_id=band_id, status=status, before=before, limit=limit + 1
        )
        return ledger_page(page_of(rows, limit, lambda p: (str(p.created_at), p.id)))


def _ledger_position(created_at: str, payment_id: str) -> tuple[int, str]:
    """A ledger cursor's (created_at, id), or ``invalid_payload`` for one this list never
    made."""
    try:
        position = int(created_at), parse_uuid(payment_id)
    except ValueError:
        position = (-1, "")
    if not 0 <= position[0] <= MAX_LEDGER_CREATED_AT:
        raise InvalidPayload("cursor: not a cursor of this list", details={"field": "cursor"})
    return position


def _uuid_or_none(value: str | None) -> str | None:
    """The payment id a gateway echoes back, if it is one of ours at all (metadata and order
    ids are free text at the gateway)."""
    try:
        return parse_uuid(value)
    except PydanticCustomError:
        return None
