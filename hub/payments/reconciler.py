"""Payments whose charge went unanswered (a timeout, a reset, a 5xx) are settled by asking
the gateway, never by guessing: one node at a time (a Redis lease per round), at start-up and
every ``PAYMENT_RECONCILE_SECONDS``. A payment is failed only on an answer that proves nothing
was charged; a gateway that does not answer the question is asked again next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from hub.errors import GatewayRefused, GatewayUnavailable, PaymentFailed
from hub.payments.moves import LedgerMoves
from hub.payments.ports import ChargeResult, Lease, Ledger, PaymentGateway
from hub.payments.rules import PaymentMethod
from storage.sql.payments import PaymentRow

log = logging.getLogger(__name__)

RECONCILE_BATCH = 100  # payments asked about per round


class Reconciler:
    def __init__(
        self,
        *,
        ledger: Ledger,
        moves: LedgerMoves,
        gateways: Mapping[PaymentMethod, PaymentGateway],
        lease: Lease | None,
        interval_seconds: int,
        sweep: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._sweep = sweep
        self._ledger = ledger
        self._moves = moves
        self._gateways = gateways
        self._lease = lease
        self._interval_seconds = interval_seconds

    async def run(self) -> None:
        """Until cancelled: at start-up and every ``PAYMENT_RECONCILE_SECONDS``, on whichever
        node takes the round's lease, settle the payments the gateways did not answer, and
        sweep the idempotency records past their retention."""
        while True:
            try:
                if self._lease is None or await self._lease.take(self._interval_seconds * 1000):
                    await self.reconcile_once()
                    if self._sweep is not None:
                        await self._sweep()
            except Exception:
                log.warning("payment reconciliation failed; will retry", exc_info=True)
            await asyncio.sleep(self._interval_seconds)

    async def reconcile_once(self, limit: int = RECONCILE_BATCH) -> int:
        """Ask the gateway about every payment whose charge went unanswered and settle it:
        succeeded, failed (only on an answer proving nothing was charged), or still pending
        (asked again next time). How many were settled."""
        settled = 0
        for payment in await self._ledger.uncertain_payments(limit):
            gateway = next((g for m, g in self._gateways.items() if m == payment.method), None)
            if gateway is None:
                continue
            try:
                found = await gateway.look_up(payment)
            except PaymentFailed as exc:
                await self._moves.failed(payment, exc)
                settled += 1
                continue
            except (GatewayRefused, GatewayUnavailable):
                log.warning("payment %s: the gateway did not say; asking again later", payment.id)
                continue
            settled += await self._settle_found(payment, found)
        return settled

    async def _settle_found(self, payment: PaymentRow, found: ChargeResult | None) -> int:
        if found is None:
            await self._moves.failed(
                payment,
                PaymentFailed(
                    "the gateway has no such payment: nothing was charged",
                    details={"gateway": payment.method},
                ),
            )
            return 1
        await self._moves.record_charge(payment, found)
        await self._ledger.clear_uncertain(payment.id)
        return 1
