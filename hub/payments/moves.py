"""How the ledger moves and who is told: every status change the payment flows make (a charge
answered, a charge failed, a reconciled or refunded payment) goes through here, is pushed as
``payment:updated`` to the band's owner and admins and to the payer, and settles the gig when
its payments now cover the fee.
"""

from __future__ import annotations

import logging

from hub.bands.service import may_manage
from hub.clock import Clock
from hub.errors import GatewayRefused, GatewayUnavailable, PaymentFailed
from hub.fanout import Delivery, Fanout
from hub.payments.idempotency import PaymentAnswer
from hub.payments.ports import BandRecords, ChargeResult, GigAccess, Ledger
from hub.payments.rules import TRANSITIONS
from hub.payments.views import payment_updated, payment_view
from storage.sql.payments import PaymentRow

log = logging.getLogger(__name__)


class LedgerMoves:
    def __init__(
        self, *, ledger: Ledger, gigs: GigAccess, bands: BandRecords, fanout: Fanout, clock: Clock
    ) -> None:
        self._ledger = ledger
        self._gigs = gigs
        self._bands = bands
        self._fanout = fanout
        self._clock = clock

    async def record_charge(self, payment: PaymentRow, result: ChargeResult) -> PaymentRow:
        """The row after what the gateway made of the charge: succeeded at once (a sale), or
        still pending with the gateway's transaction attached (a webhook decides)."""
        now = self._clock()
        if result.status == "succeeded":
            target, allowed = TRANSITIONS["succeeded"]
            moved = await self._ledger.move_status(
                payment.id,
                target,
                allowed,
                transaction_id=result.transaction_id,
                reason=None,
                now=now,
            )
        else:
            moved = await self._ledger.attach_transaction(payment.id, result.transaction_id, now)
            if moved is None:
                # The row names another transaction than the one the gateway just gave:
                # answering would hand the app a payment the ledger does not know.
                raise RuntimeError(f"payment {payment.id} already has another transaction")
        if moved is not None:
            await self.announce(moved)
        return moved or await self._ledger.payment(payment.id) or payment

    async def _settle_gig(self, payment: PaymentRow) -> None:
        """A ``played`` gig whose fee the succeeded payments now cover moves to ``paid``, as
        a manual move would (``gig:updated``). Committed money is never undone by a failed
        gig move: it is logged, and the next payment event tries again."""
        if payment.status != "succeeded":
            return
        try:
            band = await self._bands.get(payment.band_id)
            if band is not None:
                await self._gigs.mark_paid_if_covered(payment.gig_id, band)
        except Exception:
            log.warning("gig %s not moved to paid", payment.gig_id, exc_info=True)

    async def failed(
        self, payment: PaymentRow, exc: PaymentFailed | GatewayRefused | GatewayUnavailable
    ) -> PaymentAnswer:
        """The gateway said no, or nothing: the row is failed and the answer says why."""
        target, allowed = TRANSITIONS["failed"]
        transaction_id = (exc.details or {}).get("transactionId")
        moved = await self._ledger.move_status(
            payment.id,
            target,
            allowed,
            transaction_id=transaction_id if isinstance(transaction_id, str) else None,
            reason=exc.message,
            now=self._clock(),
        )
        if moved is not None:
            await self.announce(moved)
        current = moved or await self._ledger.payment(payment.id) or payment
        error = exc.as_error()
        error["details"] = {**(exc.details or {}), "payment": payment_view(current)}
        return PaymentAnswer(exc.http_status, {"error": error})

    async def announce(self, payment: PaymentRow) -> None:
        """``payment:updated`` to the band's owner and admins, and to the payer; then the gig
        is settled if the payment paid it. The change is committed already: a failed push is
        logged, never undone."""
        await self._push_payment(payment)
        await self._settle_gig(payment)

    async def _push_payment(self, payment: PaymentRow) -> None:
        try:
            band = await self._bands.get(payment.band_id)
            managers = {m.user_id for m in band.members if may_manage(m.role)} if band else set()
            payload = payment_updated(payment)
            await self._fanout.deliver(
                [
                    Delivery(user, "payment:updated", payload)
                    for user in sorted({*managers, payment.user_id})
                ]
            )
        except Exception:
            log.warning("payment:updated for %s not pushed", payment.id, exc_info=True)
