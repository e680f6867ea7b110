"""The Redis client the hub uses: a blocking pool, so a burst waits for a connection
instead of failing (redis-py's default async pool raises past its limit)."""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.asyncio.client import Redis


def open_redis(url: str, *, max_connections: int) -> Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=15,
        retry_on_timeout=True,
    )
    return Redis(connection_pool=pool)


def lua_source(name: str) -> str:
    return (resources.files("storage.redis") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
