"""The payments ledger and the webhook events applied to it.

Status changes are compare-and-set (``WHERE status = ANY(allowed)``) so two webhooks or two
nodes racing on one payment move it at most once; which moves are allowed is the payments
service's rule, passed in. A webhook event is recorded in the same transaction as the move it
causes, so a replay finds it and changes nothing. A new payment is tied to its idempotency
record (``storage.sql.payments_idempotency``) in the transaction that inserts it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures
from storage.sql.payments_idempotency import LINK_IDEMPOTENCY_TO_PAYMENT, LostClaim


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: str
    gig_id: str
    band_id: str
    user_id: str
    amount: int
    currency: str
    method: str
    status: str
    transaction_id: str | None
    failure_reason: str | None
    created_at: int
    updated_at: int
    refunded_amount: int = 0


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A payment about to be written; its amount is decided under the gig's lock."""

    id: str
    gig_id: str
    band_id: str
    user_id: str
    currency: str
    method: str
    created_at: int


@dataclass(frozen=True, slots=True)
class GigMoney:
    """A gig's fee and what its payments add up to: ``paid`` is what succeeded less what went
    back (refunds, disputes), ``pending`` what is not decided yet."""

    gig_status: str
    fee: int
    currency: str
    paid: int
    pending: int


# Decides a new payment's amount from the gig's money, or raises (writing nothing).
AmountRule = Callable[[GigMoney | None], int]


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """``duplicate``: the event was applied before. ``payment``: the row it names, if any, as
    it is now. ``changed``: whether this event moved it."""

    duplicate: bool
    payment: PaymentRow | None
    changed: bool


PAYMENT_COLUMNS = (
    "id, gig_id, band_id, user_id, amount, currency, method, status, transaction_id, "
    "failure_reason, created_at, updated_at, refunded_amount"
)
INSERT_PAYMENT = f"""
INSERT INTO payments (id, gig_id, band_id, user_id, amount, currency, method, status,
                      created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)
RETURNING {PAYMENT_COLUMNS}
"""
# The gig row is locked FOR UPDATE while a payment's amount is decided from what its payments
# add up to, so two payments for one gig (any node) are decided one after the other.
LOCK_GIG_FOR_PAYMENT = "SELECT status, fee_amount, currency FROM gigs WHERE id = $1 FOR UPDATE"
SUM_GIG_PAYMENTS = """
SELECT
  COALESCE(SUM(amount - refunded_amount)
           FILTER (WHERE status IN ('succeeded', 'partially_refunded')), 0) AS paid,
  COALESCE(SUM(amount) FILTER (WHERE status = 'pending'), 0) AS pending
FROM payments WHERE gig_id = $1
"""
SELECT_PAYMENT = f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
ATTACH_TRANSACTION = f"""
UPDATE payments SET transaction_id = $2, updated_at = $3
WHERE id = $1 AND (transaction_id IS NULL OR transaction_id = $2)
RETURNING {PAYMENT_COLUMNS}
"""
# Compare-and-set: moves only from a status the rules allow; the transaction id is filled in
# when the gateway names it and we did not know it yet.
MOVE_PAYMENT_STATUS = f"""
UPDATE payments
SET status = $2, transaction_id = COALESCE(transaction_id, $4), failure_reason = $5,
    updated_at = $6, uncertain_since = NULL,
    refunded_amount = CASE WHEN $2 = 'refunded' THEN amount ELSE refunded_amount END
WHERE id = $1 AND status = ANY($3::text[])
RETURNING {PAYMENT_COLUMNS}
"""
# A pending payment whose gateway call ended without an answer: the reconciler's to settle.
MARK_UNCERTAIN = f"""
UPDATE payments
SET uncertain_since = COALESCE(uncertain_since, $3), transaction_id = COALESCE(transaction_id, $2),
    updated_at = $3
WHERE id = $1 AND status = 'pending'
RETURNING {PAYMENT_COLUMNS}
"""
# A refund, by the total given back so far: the route and the gateway's webhook may both
# report one refund, and the larger total wins once. Never more than the payment.
RECORD_REFUND = f"""
UPDATE payments
SET refunded_amount = $2,
    status = CASE WHEN $2 >= amount THEN 'refunded' ELSE 'partially_refunded' END,
    updated_at = $3
WHERE id = $1 AND status IN ('succeeded', 'partially_refunded') AND $2 > refunded_amount
  AND $2 <= amount
RETURNING {PAYMENT_COLUMNS}
"""
CLEAR_UNCERTAIN = "UPDATE payments SET uncertain_since = NULL WHERE id = $1"
SELECT_UNCERTAIN = f"""
SELECT {PAYMENT_COLUMNS} FROM payments WHERE uncertain_since IS NOT NULL
ORDER BY uncertain_since LIMIT $1
"""
INSERT_WEBHOOK_EVENT_IF_NEW = """
INSERT INTO payment_webhook_events (gateway, event_id, kind, received_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (gateway, event_id) DO NOTHING
RETURNING event_id
"""
SET_WEBHOOK_EVENT_PAYMENT = """
UPDATE payment_webhook_events SET payment_id = $3 WHERE gateway = $1 AND event_id = $2
"""
SELECT_PAYMENT_FOR_EVENT = f"""
SELECT {PAYMENT_COLUMNS} FROM payments
WHERE method = $1
  AND (($2::uuid IS NOT NULL AND id = $2::uuid)
       OR ($3::text IS NOT NULL AND transaction_id = $3::text))
ORDER BY (id = $2::uuid) IS TRUE DESC
LIMIT 1
FOR UPDATE
"""
# Newest first; the cursor is the last row's (created_at, id).
SELECT_LEDGER_PAGE = f"""
SELECT {PAYMENT_COLUMNS} FROM payments
WHERE user_id = $1
  AND ($2::uuid IS NULL OR gig_id = $2::uuid)
  AND ($3::uuid IS NULL OR band_id = $3::uuid)
  AND ($4::text IS NULL OR status = $4::text)
  AND ($5::bigint IS NULL OR (created_at, id) < ($5::bigint, $6::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7
"""


def _payment(row: asyncpg.Record) -> PaymentRow:
    return PaymentRow(
        id=str(row["id"]),
        gig_id=str(row["gig_id"]),
        band_id=str(row["band_id"]),
        user_id=str(row["user_id"]),
        amount=int(row["amount"]),
        currency=str(row["currency"]),
        method=str(row["method"]),
        status=str(row["status"]),
        transaction_id=row["transaction_id"],
        failure_reason=row["failure_reason"],
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        refunded_amount=int(row["refunded_amount"]),
    )


def gig_money(gig: asyncpg.Record | None, sums: asyncpg.Record | None) -> GigMoney | None:
    if gig is None or sums is None:
        return None
    return GigMoney(
        gig_status=str(gig["status"]),
        fee=int(gig["fee_amount"]),
        currency=str(gig["currency"]),
        paid=int(sums["paid"]),
        pending=int(sums["pending"]),
    )


@translates_failures
class PaymentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # The ledger

    async def create_pending(
        self, payment: NewPayment, key: str, owner: str, amount_for: AmountRule
    ) -> PaymentRow:
        """Lock the gig, decide the amount from what its payments add up to (``amount_for``
        may raise: nothing is written), insert the pending row and tie it to the idempotency
        record, in one transaction: so a request that retakes the record finds this row, and
        concurrent payments for one gig never add up to more than ``amount_for`` allows.
        Raises ``LostClaim`` (writing nothing) if the record is no longer ours."""
        async with self._pool.acquire() as conn, conn.transaction():
            gig = await conn.fetchrow(LOCK_GIG_FOR_PAYMENT, payment.gig_id)
            sums = await conn.fetchrow(SUM_GIG_PAYMENTS, payment.gig_id) if gig else None
            amount = amount_for(gig_money(gig, sums))
            row = await conn.fetchrow(
                INSERT_PAYMENT,
                payment.id,
                payment.gig_id,
                payment.band_id,
                payment.user_id,
                amount,
                payment.currency,
                payment.method,
                payment.created_at,
            )
            linked = await conn.execute(
                LINK_IDEMPOTENCY_TO_PAYMENT, payment.user_id, key, owner, payment.id
            )
            if linked != "UPDATE 1":
                raise LostClaim(key)
        assert row is not None
        return _payment(row)

    async def payment(self, payment_id: str) -> PaymentRow | None:
        row = await self._pool.fetchrow(SELECT_PAYMENT, payment_id)
        return None if row is None else _payment(row)

    async def mark_uncertain(
        self, payment_id: str, transaction_id: str | None, now: int
    ) -> PaymentRow | None:
        """The pending row, now waiting for the reconciler; None if it is no longer pending."""
        row = await self._pool.fetchrow(MARK_UNCERTAIN, payment_id, transaction_id, now)
        return None if row is None else _payment(row)

    async def record_refund(
        self, payment_id: str, refunded_total: int, now: int
    ) -> PaymentRow | None:
        """The row with ``refunded_total`` given back, or None when that moves nothing."""
        row = await self._pool.fetchrow(RECORD_REFUND, payment_id, refunded_total, now)
        return None if row is None else _payment(row)

    async def clear_uncertain(self, payment_id: str) -> None:
        await self._pool.execute(CLEAR_UNCERTAIN, payment_id)

    async def uncertain_payments(self, limit: int) -> list[PaymentRow]:
        """The payments whose outcome the gateway has not told, oldest first."""
        return [_payment(r) for r in await self._pool.fetch(SELECT_UNCERTAIN, limit)]

    async def attach_transaction(
        self, payment_id: str, transaction_id: str, now: int
    ) -> PaymentRow | None:
        row = await self._pool.fetchrow(ATTACH_TRANSACTION, payment_id, transaction_id, now)
        return None if row is None else _payment(row)

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
        """The row after the move, or None when its status allowed no move."""
        row = await self._pool.fetchrow(
            MOVE_PAYMENT_STATUS,
            payment_id,
            status,
            list(allowed_from),
            transaction_id,
            reason,
            now,
        )
        return None if row is None else _payment(row)

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
        """Record the event and make the move it implies, in one transaction: exactly once."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(INSERT_WEBHOOK_EVENT_IF_NEW, gateway, event_id, kind, now)
            if fresh is None:
                return WebhookOutcome(duplicate=True, payment=None, changed=False)
            if payment_id is None and transaction_id is None:
                return WebhookOutcome(duplicate=False, payment=None, changed=False)
            found = await conn.fetchrow(
                SELECT_PAYMENT_FOR_EVENT, method, payment_id, transaction_id
            )
            if found is None:
                return WebhookOutcome(duplicate=False, payment=None, changed=False)
            await conn.execute(SET_WEBHOOK_EVENT_PAYMENT, gateway, event_id, found["id"])
            if refunded_total is not None:
                moved = await conn.fetchrow(RECORD_REFUND, found["id"], refunded_total, now)
                return WebhookOutcome(
                    duplicate=False,
                    payment=_payment(moved or found),
                    changed=moved is not None,
                )
            if status is None:
                return WebhookOutcome(duplicate=False, payment=_payment(found), changed=False)
            moved = await conn.fetchrow(
                MOVE_PAYMENT_STATUS,
                found["id"],
                status,
                list(allowed_from),
                transaction_id,
                reason,
                now,
            )
        if moved is None:
            return WebhookOutcome(duplicate=False, payment=_payment(found), changed=False)
        return WebhookOutcome(duplicate=False, payment=_payment(moved), changed=True)

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
        rows = await self._pool.fetch(
            SELECT_LEDGER_PAGE,
            user_id,
            gig_id,
            band_id,
            status,
            before[0] if before else None,
            before[1] if before else None,
            limit,
        )
        return [_payment(r) for r in rows]
