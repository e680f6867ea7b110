"""Band membership as the messaging, presence and call rules need it."""

from __future__ import annotations

import asyncpg

SELECT_BAND_MEMBER_IDS = "SELECT user_id FROM band_members WHERE band_id = $1"
SELECT_BAND_EXISTS = "SELECT EXISTS (SELECT 1 FROM bands WHERE id = $1)"
# Everyone among $2 who shares a band or a direct conversation with $1.
SELECT_VISIBLE_AMONG = """
SELECT b.user_id AS other FROM band_members a JOIN band_members b ON a.band_id = b.band_id
WHERE a.user_id = $1 AND b.user_id = ANY($2::uuid[])
UNION
SELECT user_high FROM direct_conversations WHERE user_low = $1 AND user_high = ANY($2::uuid[])
UNION
SELECT user_low FROM direct_conversations WHERE user_high = $1 AND user_low = ANY($2::uuid[])
"""
# Everyone who shares a band or a direct conversation with $1.
SELECT_CONTACTS = """
SELECT b.user_id AS other FROM band_members a JOIN band_members b ON a.band_id = b.band_id
WHERE a.user_id = $1 AND b.user_id <> $1
UNION
SELECT user_high FROM direct_conversations WHERE user_low = $1
UNION
SELECT user_low FROM direct_conversations WHERE user_high = $1
"""


class MembershipStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def band_exists(self, band_id: str) -> bool:
        return bool(await self._pool.fetchval(SELECT_BAND_EXISTS, band_id))

    async def band_member_ids(self, band_id: str) -> set[str]:
        rows = await self._pool.fetch(SELECT_BAND_MEMBER_IDS, band_id)
        return {str(r["user_id"]) for r in rows}

    async def visible_among(self, user_id: str, others: list[str]) -> set[str]:
        rows = await self._pool.fetch(SELECT_VISIBLE_AMONG, user_id, others)
        return {str(r["other"]) for r in rows}

    async def contacts(self, user_id: str) -> set[str]:
        rows = await self._pool.fetch(SELECT_CONTACTS, user_id)
        return {str(r["other"]) for r in rows}
