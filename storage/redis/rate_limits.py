"""Fixed-window counters in Redis, so a limit holds across every hub node."""

from __future__ import annotations

from redis.asyncio.client import Redis

from storage.failures import translates_failures
from storage.redis.client import lua_source
from storage.redis.keys import RedisKeys


@translates_failures
class RedisRateWindows:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._keys = keys
        self._script = redis.register_script(lua_source("rate_window"))
        self._redis = redis

    async def hit(self, scope: str, subject: str, *, window_ms: int) -> tuple[int, int]:
        """Count one hit; returns (hits in this window, ms until the window resets)."""
        count, left = await self._script(
            keys=[self._keys.rate_window(scope, subject)], args=[window_ms]
        )
        return int(count), int(left)

    async def count(self, scope: str, subject: str) -> tuple[int, int]:
        """(hits in this window, ms until it resets) without counting one."""
        key = self._keys.rate_window(scope, subject)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            raw, left = await pipe.execute()
        return (int(raw) if raw else 0), max(0, int(left))

    async def clear(self, scope: str, subject: str) -> None:
        await self._redis.delete(self._keys.rate_window(scope, subject))
