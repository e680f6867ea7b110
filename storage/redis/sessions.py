"""Revoked sessions, as every node checks them per request: a key per session whose TTL is
the access-token lifetime (after that, no token of it is unexpired anyway)."""

from __future__ import annotations

from collections.abc import Collection

from redis.asyncio.client import Redis

from storage.failures import translates_failures
from storage.redis.keys import RedisKeys


@translates_failures
class RedisRevokedSessions:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def record(self, session_ids: Collection[str], reason: str, ttl_seconds: int) -> None:
        if not session_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.set(self._keys.revoked_session(session_id), reason, ex=ttl_seconds)
            await pipe.execute()

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self._redis.exists(self._keys.revoked_session(session_id)))
