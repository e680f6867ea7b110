"""The payments ledger, idempotency records, applied webhook events and gig fee splits.

Status changes are compare-and-set (``WHERE status = ANY(allowed)``) so two webhooks or two
nodes racing on one payment move it at most once; which moves are allowed is the payments
service's rule, passed in. A webhook event is recorded in the same transaction as the move it
causes, so a replay finds it and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


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


@dataclass(frozen=True, slots=True)
class NewPayment:
    id: str
    gig_id: str
    band_id: str
    user_id: str
    amount: int
    currency: str
    method: str
    created_at: int


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    user_id: str
    key: str
    request_hash: str
    state: str
    owner_token: str
    locked_at: int
    payment_id: str | None
    response_status: int | None
    response_body: str | None


@dataclass(frozen=True, slots=True)
class GigForPayment:
    id: str
    band_id: str
    fee_amount: int
    currency: str
    status: str


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """``duplicate``: the event was applied before. ``payment``: the row it names, if any, as
    it is now. ``changed``: whether this event moved it."""

    duplicate: bool
    payment: PaymentRow | None
    changed: bool


@dataclass(frozen=True, slots=True)
class ShareRow:
    user_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class SplitRow:
    gig_id: str
    mode: str
    total: int
    currency: str
    updated_by: str
    updated_at: int
    shares: tuple[ShareRow, ...]


PAYMENT_COLUMNS = (
    "id, gig_id, band_id, user_id, amount, currency, method, status, transaction_id, "
    "failure_reason, created_at, updated_at"
)
IDEMPOTENCY_COLUMNS = (
    "user_id, key, request_hash, state, owner_token, locked_at, payment_id, response_status, "
    "response_body"
)

INSERT_IDEMPOTENCY_IF_NEW = f"""
INSERT INTO payment_idempotency (user_id, key, request_hash, state, owner_token, locked_at,
                                 created_at)
VALUES ($1, $2, $3, 'in_progress', $4, $5, $5)
ON CONFLICT (user_id, key) DO NOTHING
RETURNING {IDEMPOTENCY_COLUMNS}
"""
SELECT_IDEMPOTENCY = f"""
SELECT {IDEMPOTENCY_COLUMNS} FROM payment_idempotency WHERE user_id = $1 AND key = $2
"""
# Only the owner seen as stale may be replaced: two nodes retaking at once, one wins.
RETAKE_IDEMPOTENCY = f"""
UPDATE payment_idempotency SET owner_token = $4, locked_at = $5
WHERE user_id = $1 AND key = $2 AND state = 'in_progress' AND owner_token = $3
RETURNING {IDEMPOTENCY_COLUMNS}
"""
DELETE_IDEMPOTENCY_UNUSED = """
DELETE FROM payment_idempotency
WHERE user_id = $1 AND key = $2 AND state = 'in_progress' AND owner_token = $3
  AND payment_id IS NULL
"""
# The first answer wins; a late finisher (an owner that lost its lease) keeps the stored one.
FINISH_IDEMPOTENCY = f"""
UPDATE payment_idempotency SET state = 'done', response_status = $3, response_body = $4
WHERE user_id = $1 AND key = $2 AND state = 'in_progress'
RETURNING {IDEMPOTENCY_COLUMNS}
"""
LINK_IDEMPOTENCY_TO_PAYMENT = """
UPDATE payment_idempotency SET payment_id = $4
WHERE user_id = $1 AND key = $2 AND owner_token = $3 AND state = 'in_progress'
  AND payment_id IS NULL
"""
INSERT_PAYMENT = f"""
INSERT INTO payments (id, gig_id, band_id, user_id, amount, currency, method, status,
                      created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)
RETURNING {PAYMENT_COLUMNS}
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
    updated_at = $6
WHERE id = $1 AND status = ANY($3::text[])
RETURNING {PAYMENT_COLUMNS}
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
SELECT_GIG_FOR_PAYMENT = """
SELECT id, band_id, fee_amount, currency, status FROM gigs WHERE id = $1
"""
LOCK_GIG_FEE = "SELECT fee_amount, currency FROM gigs WHERE id = $1 FOR SHARE"
SELECT_MEMBER_ROLE = "SELECT role FROM band_members WHERE band_id = $1 AND user_id = $2"
SELECT_BAND_MANAGER_IDS = """
SELECT user_id FROM band_members WHERE band_id = $1 AND role IN ('owner', 'admin')
"""
SELECT_BAND_MEMBER_IDS_ORDERED = """
SELECT user_id FROM band_members WHERE band_id = $1 ORDER BY user_id
"""
UPSERT_GIG_SPLIT = """
INSERT INTO gig_splits (gig_id, mode, total, currency, updated_by, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (gig_id) DO UPDATE
SET mode = EXCLUDED.mode, total = EXCLUDED.total, currency = EXCLUDED.currency,
    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
"""
DELETE_GIG_SPLIT_SHARES = "DELETE FROM gig_split_shares WHERE gig_id = $1"
INSERT_GIG_SPLIT_SHARES = """
INSERT INTO gig_split_shares (gig_id, user_id, amount)
SELECT $1, s.user_id, s.amount FROM unnest($2::uuid[], $3::bigint[]) AS s(user_id, amount)
"""
SELECT_GIG_SPLIT = """
SELECT gig_id, mode, total, currency, updated_by, updated_at FROM gig_splits WHERE gig_id = $1
"""
SELECT_GIG_SPLIT_SHARES = """
SELECT user_id, amount FROM gig_split_shares WHERE gig_id = $1 ORDER BY user_id
"""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


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
    )


def _idempotency(row: asyncpg.Record) -> IdempotencyRow:
    return IdempotencyRow(
        user_id=str(row["user_id"]),
        key=str(row["key"]),
        request_hash=str(row["request_hash"]),
        state=str(row["state"]),
        owner_token=str(row["owner_token"]),
        locked_at=int(row["locked_at"]),
        payment_id=_text(row["payment_id"]),
        response_status=row["response_status"],
        response_body=row["response_body"],
    )


class LostClaim(Exception):
    """The idempotency record was retaken by another request; nothing was written."""


class PaymentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # Idempotency records

    async def claim_idempotency(
        self, user_id: str, key: str, request_hash: str, owner: str, now: int
    ) -> IdempotencyRow | None:
        """The record for (user, key): a new one owned by ``owner``, or whoever's it is.
        None only if it vanished between the two statements (a released claim)."""
        row = await self._pool.fetchrow(
            INSERT_IDEMPOTENCY_IF_NEW, user_id, key, request_hash, owner, now
        )
        if row is None:
            row = await self._pool.fetchrow(SELECT_IDEMPOTENCY, user_id, key)
        return None if row is None else _idempotency(row)

    async def idempotency(self, user_id: str, key: str) -> IdempotencyRow | None:
        row = await self._pool.fetchrow(SELECT_IDEMPOTENCY, user_id, key)
        return None if row is None else _idempotency(row)

    async def retake_idempotency(
        self, user_id: str, key: str, stale_owner: str, owner: str, now: int
    ) -> IdempotencyRow | None:
        row = await self._pool.fetchrow(RETAKE_IDEMPOTENCY, user_id, key, stale_owner, owner, now)
        return None if row is None else _idempotency(row)

    async def release_idempotency(self, user_id: str, key: str, owner: str) -> None:
        await self._pool.execute(DELETE_IDEMPOTENCY_UNUSED, user_id, key, owner)

    async def finish_idempotency(
        self, user_id: str, key: str, status: int, body: str
    ) -> IdempotencyRow | None:
        """Store the answer unless one is stored already; returns the stored record."""
        row = await self._pool.fetchrow(FINISH_IDEMPOTENCY, user_id, key, status, body)
        if row is None:
            row = await self._pool.fetchrow(SELECT_IDEMPOTENCY, user_id, key)
        return None if row is None else _idempotency(row)

    # The ledger

    async def create_pending(self, payment: NewPayment, key: str, owner: str) -> PaymentRow:
        """Insert the pending row and tie it to the idempotency record in one transaction,
        so a request that retakes the record finds this row instead of making another.
        Raises ``LostClaim`` (writing nothing) if the record is no longer ours."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                INSERT_PAYMENT,
                payment.id,
                payment.gig_id,
                payment.band_id,
                payment.user_id,
                payment.amount,
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

    # Gigs and bands, as payments need them

    async def gig(self, gig_id: str) -> GigForPayment | None:
        row = await self._pool.fetchrow(SELECT_GIG_FOR_PAYMENT, gig_id)
        if row is None:
            return None
        return GigForPayment(
            id=str(row["id"]),
            band_id=str(row["band_id"]),
            fee_amount=int(row["fee_amount"]),
            currency=str(row["currency"]).strip(),
            status=str(row["status"]),
        )

    async def member_role(self, band_id: str, user_id: str) -> str | None:
        role = await self._pool.fetchval(SELECT_MEMBER_ROLE, band_id, user_id)
        return None if role is None else str(role)

    async def band_manager_ids(self, band_id: str) -> list[str]:
        rows = await self._pool.fetch(SELECT_BAND_MANAGER_IDS, band_id)
        return [str(r["user_id"]) for r in rows]

    async def band_member_ids(self, band_id: str) -> list[str]:
        """Ordered by user id: the order the equal split hands out remainders in."""
        rows = await self._pool.fetch(SELECT_BAND_MEMBER_IDS_ORDERED, band_id)
        return [str(r["user_id"]) for r in rows]

    # Splits

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
        """Replace the gig's split, or None (writing nothing) if the gig's fee or currency is
        no longer ``total``/``currency``: the split was computed from a fee that changed."""
        async with self._pool.acquire() as conn, conn.transaction():
            fee = await conn.fetchrow(LOCK_GIG_FEE, gig_id)
            if (
                fee is None
                or int(fee["fee_amount"]) != total
                or str(fee["currency"]).strip() != currency
            ):
                return None
            await conn.execute(UPSERT_GIG_SPLIT, gig_id, mode, total, currency, updated_by, now)
            await conn.execute(DELETE_GIG_SPLIT_SHARES, gig_id)
            await conn.execute(
                INSERT_GIG_SPLIT_SHARES,
                gig_id,
                [s.user_id for s in shares],
                [s.amount for s in shares],
            )
        return SplitRow(
            gig_id=gig_id,
            mode=mode,
            total=total,
            currency=currency,
            updated_by=updated_by,
            updated_at=now,
            shares=tuple(sorted(shares, key=lambda s: s.user_id)),
        )

    async def split(self, gig_id: str) -> SplitRow | None:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            head = await conn.fetchrow(SELECT_GIG_SPLIT, gig_id)
            if head is None:
                return None
            shares = await conn.fetch(SELECT_GIG_SPLIT_SHARES, gig_id)
        return SplitRow(
            gig_id=str(head["gig_id"]),
            mode=str(head["mode"]),
            total=int(head["total"]),
            currency=str(head["currency"]).strip(),
            updated_by=str(head["updated_by"]),
            updated_at=int(head["updated_at"]),
            shares=tuple(ShareRow(str(s["user_id"]), int(s["amount"])) for s in shares),
        )
