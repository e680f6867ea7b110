"""Call history: one row per finished call, and who it involved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures


@dataclass(frozen=True, slots=True)
class FinishedCall:
    id: str
    caller_id: str
    callee_id: str | None
    band_id: str | None
    instance: str
    media: str
    started_at: int
    answered_at: int | None
    ended_at: int
    outcome: str


CALL_COLUMNS = (
    "c.id, c.caller_id, c.callee_id, c.band_id, c.instance, c.media, c.started_at, "
    "c.answered_at, c.ended_at, c.outcome"
)
INSERT_CALL_IF_NEW = """
INSERT INTO calls (id, caller_id, callee_id, band_id, instance, media, started_at, answered_at,
                   ended_at, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO NOTHING
"""
INSERT_CALL_PARTICIPANTS = """
INSERT INTO call_participants (call_id, user_id, started_at)
SELECT $1, user_id, $3 FROM unnest($2::uuid[]) AS user_id
ON CONFLICT DO NOTHING
"""
# A user's calls older than the cursor (started_at, id), newest first.
SELECT_CALLS_OF_USER_BEFORE = f"""
SELECT {CALL_COLUMNS} FROM call_participants p JOIN calls c ON c.id = p.call_id
WHERE p.user_id = $1 AND (p.started_at, p.call_id) < ($2, $3::uuid)
ORDER BY p.started_at DESC, p.call_id DESC
LIMIT $4
"""


def _row(record: asyncpg.Record) -> FinishedCall:
    return FinishedCall(
        id=str(record["id"]),
        caller_id=str(record["caller_id"]),
        callee_id=str(record["callee_id"]) if record["callee_id"] else None,
        band_id=str(record["band_id"]) if record["band_id"] else None,
        instance=record["instance"],
        media=record["media"],
        started_at=record["started_at"],
        answered_at=record["answered_at"],
        ended_at=record["ended_at"],
        outcome=record["outcome"],
    )


@translates_failures
class CallHistoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, call: FinishedCall, participants: Sequence[str]) -> None:
        """Idempotent on the call id: a call is recorded once, whoever records it."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                INSERT_CALL_IF_NEW,
                call.id,
                call.caller_id,
                call.callee_id,
                call.band_id,
                call.instance,
                call.media,
                call.started_at,
                call.answered_at,
                call.ended_at,
                call.outcome,
            )
            await conn.execute(
                INSERT_CALL_PARTICIPANTS, call.id, list(participants), call.started_at
            )

    async def calls_of(
        self, user_id: str, *, before_started_at: int, before_id: str, limit: int
    ) -> list[FinishedCall]:
        rows = await self._pool.fetch(
            SELECT_CALLS_OF_USER_BEFORE, user_id, before_started_at, before_id, limit
        )
        return [_row(r) for r in rows]
