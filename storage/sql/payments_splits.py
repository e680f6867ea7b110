"""Gig fee splits: how a gig's fee is shared among the band's members (a plan, not money
moved, so it goes with its gig: ``ON DELETE CASCADE``).

A split is saved only against the fee it was computed from: the gig's fee row is locked with
the gigs module's own ``LOCK_GIG_FEE`` while the split is written, so a fee changed meanwhile
is noticed, never silently split wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures
from storage.sql.gigs import LOCK_GIG_FEE


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


@translates_failures
class SplitStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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
