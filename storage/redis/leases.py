"""A lease in Redis: whoever takes it does a job that one node at a time must do (the
payments reconciler), until it expires by itself. No release: a node that dies holding it
only delays the next round by the lease's length."""

from __future__ import annotations

import uuid

from redis.asyncio.client import Redis

from storage.failures import translates_failures


@translates_failures
class RedisLease:
    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self._key = key
        self._token = uuid.uuid4().hex  # this node's, for whoever reads the key

    async def take(self, ttl_ms: int) -> bool:
        """True when this node now holds the lease for ``ttl_ms``; False when another does."""
        return bool(await self._redis.set(self._key, self._token, nx=True, px=ttl_ms))
