"""Refunds: an owner or admin of the gig's band gives a payment back, in full or in part,
through the gateway's own refund, at most once per Idempotency-Key.

Who may refund is the gig's access rule (a non-member is told what a missing payment is
told) and the band's manager rule; how much is ``hub.payments.rules.refund_amount``. The
ledger records the refund by the total given back, so the gateway's own webhook reporting the
same refund changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.bands.service import require_manager
from hub.clock import Clock
from hub.errors import NotFound
from hub.payments.idempotency import IdempotentRequests, PaymentAnswer
from hub.payments.moves import LedgerMoves
from hub.payments.ports import GigAccess, Ledger, PaymentGateway
from hub.payments.rules import PaymentMethod, refund_amount, refund_fields, request_fingerprint
from hub.payments.views import payment_refunded
from storage.sql.payments_idempotency import IdempotencyRow


class RefundService:
    def __init__(
        self,
        *,
        ledger: Ledger,
        gigs: GigAccess,
        gateways: Mapping[PaymentMethod, PaymentGateway],
        moves: LedgerMoves,
        once: IdempotentRequests,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._gigs = gigs
        self._gateways = gateways
        self._moves = moves
        self._once = once
        self._clock = clock

    async def refund(
        self, user_id: str, key: str, payment_id: str, amount: int | None
    ) -> PaymentAnswer:
        """Give ``amount`` (None: all that is left) of the payment back, once per key."""
        payment = await self._ledger.payment(payment_id)
        if payment is None:
            raise NotFound("no such payment")
        try:
            _, _, role = await self._gigs.access_gig(user_id, payment.gig_id)
        except NotFound:
            raise NotFound("no such payment") from None
        require_manager(role, "refund payments")
        gateway = next((g for m, g in self._gateways.items() if m == payment.method), None)
        if gateway is None:
            raise NotFound("no such payment")
        # The refund's own namespace at the gateway, apart from the payments' keys.
        fingerprint = request_fingerprint(gateway.method, refund_fields(payment_id, amount))

        async def attempt(record: IdempotencyRow, owner: str) -> PaymentAnswer:
            current = await self._ledger.payment(payment_id) or payment
            given = refund_amount(current.status, current.amount, current.refunded_amount, amount)
            await gateway.refund(current, given, f"refund:{user_id}:{key}")
            moved = await self._ledger.record_refund(
                current.id, current.refunded_amount + given, self._clock()
            )
            if moved is not None:
                await self._moves.announce(moved)
            latest = moved or await self._ledger.payment(payment_id) or current
            return PaymentAnswer(200, payment_refunded(latest))

        return await self._once.run_once(user_id, key, fingerprint, attempt)
