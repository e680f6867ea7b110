"""Push tokens (one per device, one device per token), per-conversation mutes, and the
unread counts a push carries as its badge.

A token belongs to its device row and goes with it (``ON DELETE CASCADE``); a revoked
session takes its device's token too (``storage/sql/sessions.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures

TOKEN_COLUMNS = "user_id, device_id, provider, token, voip_token, environment"
# Another device holding the same token (another account on the same phone) loses it.
RELEASE_TOKEN = """
DELETE FROM push_tokens
WHERE NOT (user_id = $1 AND device_id = $2) AND provider = $3 AND token = $4
"""
RELEASE_VOIP_TOKEN = """
UPDATE push_tokens SET voip_token = NULL
WHERE NOT (user_id = $1 AND device_id = $2) AND voip_token = $3
"""
UPSERT_TOKEN = """
INSERT INTO push_tokens (user_id, device_id, provider, token, voip_token, environment, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, device_id) DO UPDATE SET provider = EXCLUDED.provider,
    token = EXCLUDED.token, voip_token = EXCLUDED.voip_token,
    environment = EXCLUDED.environment, updated_at = EXCLUDED.updated_at
"""
DELETE_TOKEN = "DELETE FROM push_tokens WHERE user_id = $1 AND device_id = $2 RETURNING 1"
SELECT_TOKENS_OF_USERS = f"SELECT {TOKEN_COLUMNS} FROM push_tokens WHERE user_id = ANY($1::uuid[])"
SELECT_TOKEN_HOLDERS = "SELECT DISTINCT user_id FROM push_tokens"
# A provider said this token is dead: forget it only if it is still the one registered.
FORGET_TOKEN = "DELETE FROM push_tokens WHERE provider = $1 AND token = $2"
FORGET_VOIP_TOKEN = "UPDATE push_tokens SET voip_token = NULL WHERE voip_token = $1"
# As the conversation list counts them: received, unread, and neither reactions nor edits.
COUNT_UNREAD = """
SELECT user_id, count(*) AS unread FROM inbox
WHERE user_id = ANY($1::uuid[]) AND read_at IS NULL AND sender_id <> user_id
  AND (relates_type IS NULL OR relates_type = 'reply')
GROUP BY user_id
"""
SELECT_MUTED = """
SELECT user_id, conversation_id FROM conversation_notifications
WHERE user_id = ANY($1::uuid[]) AND conversation_id = ANY($2::uuid[]) AND level = 'none'
  AND (muted_until IS NULL OR muted_until > $3)
"""
UPSERT_LEVEL = """
INSERT INTO conversation_notifications (user_id, conversation_id, level, muted_until, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, conversation_id) DO UPDATE SET level = EXCLUDED.level,
    muted_until = EXCLUDED.muted_until, updated_at = EXCLUDED.updated_at
"""
SELECT_LEVEL = """
SELECT level, muted_until FROM conversation_notifications
WHERE user_id = $1 AND conversation_id = $2
"""


@dataclass(frozen=True, slots=True)
class PushTokenRow:
    user_id: str
    device_id: str
    provider: str
    token: str
    voip_token: str | None
    environment: str


@dataclass(frozen=True, slots=True)
class NotificationLevel:
    level: str
    muted_until: int | None


def _token(row: asyncpg.Record) -> PushTokenRow:
    return PushTokenRow(
        str(row["user_id"]),
        row["device_id"],
        row["provider"],
        row["token"],
        row["voip_token"],
        row["environment"],
    )


@translates_failures
class PushTokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def register(self, row: PushTokenRow, now_ms: int) -> bool:
        """Set the device's token (replacing its earlier one), taking it from any other
        device that held it. False when the user has no such device."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(RELEASE_TOKEN, row.user_id, row.device_id, row.provider, row.token)
            if row.voip_token is not None:
                await conn.execute(RELEASE_VOIP_TOKEN, row.user_id, row.device_id, row.voip_token)
            try:
                await conn.execute(
                    UPSERT_TOKEN,
                    row.user_id,
                    row.device_id,
                    row.provider,
                    row.token,
                    row.voip_token,
                    row.environment,
                    now_ms,
                )
            except asyncpg.ForeignKeyViolationError:
                return False
            return True

    async def unregister(self, user_id: str, device_id: str) -> bool:
        return await self._pool.fetchval(DELETE_TOKEN, user_id, device_id) is not None

    async def tokens_of(self, user_ids: Collection[str]) -> list[PushTokenRow]:
        """Every registered device of these users (one query for a whole batch)."""
        if not user_ids:
            return []
        return [_token(r) for r in await self._pool.fetch(SELECT_TOKENS_OF_USERS, list(user_ids))]

    async def holders(self) -> set[str]:
        """Every user with at least one registered device (the push audience's source)."""
        return {str(r["user_id"]) for r in await self._pool.fetch(SELECT_TOKEN_HOLDERS)}

    async def forget(self, provider: str, token: str) -> None:
        await self._pool.execute(FORGET_TOKEN, provider, token)

    async def forget_voip(self, voip_token: str) -> None:
        await self._pool.execute(FORGET_VOIP_TOKEN, voip_token)

    async def unread_counts(self, user_ids: Collection[str]) -> dict[str, int]:
        """Each user's unread received messages (the badge); users with none are left out."""
        if not user_ids:
            return {}
        rows = await self._pool.fetch(COUNT_UNREAD, list(user_ids))
        return {str(r["user_id"]): int(r["unread"]) for r in rows}


@translates_failures
class NotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def set_level(
        self, user_id: str, conversation_id: str, level: NotificationLevel, now_ms: int
    ) -> None:
        await self._pool.execute(
            UPSERT_LEVEL, user_id, conversation_id, level.level, level.muted_until, now_ms
        )

    async def level_of(self, user_id: str, conversation_id: str) -> NotificationLevel | None:
        row = await self._pool.fetchrow(SELECT_LEVEL, user_id, conversation_id)
        return NotificationLevel(row["level"], row["muted_until"]) if row else None

    async def muted_among(
        self, user_ids: Sequence[str], conversation_ids: Sequence[str], now_ms: int
    ) -> set[tuple[str, str]]:
        """The (user, conversation) pairs among these that are muted now."""
        if not user_ids or not conversation_ids:
            return set()
        rows = await self._pool.fetch(
            SELECT_MUTED, list(set(user_ids)), list(set(conversation_ids)), now_ms
        )
        return {(str(r["user_id"]), str(r["conversation_id"])) for r in rows}
