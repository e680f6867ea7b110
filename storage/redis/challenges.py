"""Single-use biometric challenges: SET with a TTL, taken with GETDEL so one wins."""

from __future__ import annotations

from redis.asyncio.client import Redis

from storage.failures import translates_failures
from storage.redis.keys import RedisKeys


@translates_failures
class RedisChallengeStore:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def put(self, challenge_id: str, value: str, ttl_seconds: int) -> None:
        await self._redis.set(self._keys.biometric_challenge(challenge_id), value, ex=ttl_seconds)

    async def take(self, challenge_id: str) -> str | None:
        raw = await self._redis.getdel(self._keys.biometric_challenge(challenge_id))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
