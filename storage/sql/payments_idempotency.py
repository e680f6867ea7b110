"""Payment idempotency records: one row per (user, Idempotency-Key).

While a request runs, its record is ``in_progress`` and names its owner (a random token per
request); ``done`` keeps the first answer, status and body, to replay to every retry. Every
write is conditional on the owner or the state it was decided from, so two nodes racing on
one key change the record at most once. When a record may be retaken is the payments
service's rule (``hub.payments.rules.idempotency_verdict``), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures


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


class LostClaim(Exception):
    """The idempotency record was retaken by another request; nothing was written."""


IDEMPOTENCY_COLUMNS = (
    "user_id, key, request_hash, state, owner_token, locked_at, payment_id, response_status, "
    "response_body"
)

# A finished record older than the retention is ignored (and swept): a retry after it is a
# new request, as with Stripe's own 24 h keys.
DELETE_IDEMPOTENCY_EXPIRED_KEY = """
DELETE FROM payment_idempotency
WHERE user_id = $1 AND key = $2 AND state = 'done' AND created_at < $3
"""
SWEEP_IDEMPOTENCY_EXPIRED = """
DELETE FROM payment_idempotency WHERE state = 'done' AND created_at < $1
"""
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
# Run by the ledger in the transaction that inserts the payment (see PaymentStore).
LINK_IDEMPOTENCY_TO_PAYMENT = """
UPDATE payment_idempotency SET payment_id = $4
WHERE user_id = $1 AND key = $2 AND owner_token = $3 AND state = 'in_progress'
  AND payment_id IS NULL
"""


def _idempotency(row: asyncpg.Record) -> IdempotencyRow:
    return IdempotencyRow(
        user_id=str(row["user_id"]),
        key=str(row["key"]),
        request_hash=str(row["request_hash"]),
        state=str(row["state"]),
        owner_token=str(row["owner_token"]),
        locked_at=int(row["locked_at"]),
        payment_id=None if row["payment_id"] is None else str(row["payment_id"]),
        response_status=row["response_status"],
        response_body=row["response_body"],
    )


@translates_failures
class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(
        self,
        user_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: int,
        expired_before: int | None = None,
    ) -> IdempotencyRow | None:
        """The record for (user, key): a new one owned by ``owner``, or whoever's it is; a
        finished one made before ``expired_before`` is forgotten first. None only if it
        vanished between the two statements (a released claim)."""
        if expired_before is not None:
            await self._pool.execute(DELETE_IDEMPOTENCY_EXPIRED_KEY, user_id, key, expired_before)
        row = await self._pool.fetchrow(
            INSERT_IDEMPOTENCY_IF_NEW, user_id, key, request_hash, owner, now
        )
        if row is None:
            row = await self._pool.fetchrow(SELECT_IDEMPOTENCY, user_id, key)
        return None if row is None else _idempotency(row)

    async def sweep(self, expired_before: int) -> int:
        """Remove every finished record made before ``expired_before``; how many went."""
        done = await self._pool.execute(SWEEP_IDEMPOTENCY_EXPIRED, expired_before)
        return int(done.split()[-1])

    async def retake(
        self, user_id: str, key: str, stale_owner: str, owner: str, now: int
    ) -> IdempotencyRow | None:
        """The record now owned by ``owner``, or None if ``stale_owner`` no longer held it."""
        row = await self._pool.fetchrow(RETAKE_IDEMPOTENCY, user_id, key, stale_owner, owner, now)
        return None if row is None else _idempotency(row)

    async def release(self, user_id: str, key: str, owner: str) -> None:
        """Forget the claim, unless a payment was already written under it."""
        await self._pool.execute(DELETE_IDEMPOTENCY_UNUSED, user_id, key, owner)

    async def finish(self, user_id: str, key: str, status: int, body: str) -> IdempotencyRow | None:
        """Store the answer unless one is stored already; returns the stored record."""
        row = await self._pool.fetchrow(FINISH_IDEMPOTENCY, user_id, key, status, body)
        if row is None:
            row = await self._pool.fetchrow(SELECT_IDEMPOTENCY, user_id, key)
        return None if row is None else _idempotency(row)
