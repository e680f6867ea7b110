"""The servers the assembly opens before any service exists: the PostgreSQL pool (with the
migrations applied) and the Redis client, each an async context that closes what it opened;
a failure while closing is logged, never swallowed. ``hub/app.py`` makes each one a
``cleanup_ctx`` and builds the hub over them; nothing here knows of aiohttp."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from redis.asyncio.client import Redis

from hub.settings.sections import StorageSettings
from storage.redis.client import open_redis
from storage.sql.db import apply_migrations, open_pool

log = logging.getLogger(__name__)


@asynccontextmanager
async def postgres_pool(storage: StorageSettings) -> AsyncIterator[asyncpg.Pool]:
    assert storage.database_url
    pool = await open_pool(
        storage.database_url, min_size=storage.db_pool_min, max_size=storage.db_pool_max
    )
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        yield pool
    finally:
        await closing("the PostgreSQL pool", pool.close())


@asynccontextmanager
async def redis_client(storage: StorageSettings, node_id: str) -> AsyncIterator[Redis]:
    assert storage.redis_url
    redis = open_redis(
        storage.redis_url,
        max_connections=storage.redis_max_connections,
        client_name="".join("_" if c.isspace() else c for c in f"{storage.redis_prefix}:{node_id}"),
    )
    try:
        await redis.ping()
        yield redis
    finally:
        await closing("the Redis client", redis.aclose())


async def closing(what: str, closed: Coroutine[Any, Any, Any]) -> None:
    try:
        await closed
    except Exception:
        log.exception("closing %s failed", what)


def health_check(
    pool: asyncpg.Pool, redis: Redis
) -> Callable[[], Coroutine[Any, Any, dict[str, bool]]]:
    async def health_check() -> dict[str, bool]:
        return {
            "postgres": await _answers(pool.fetchval("SELECT 1")),
            "redis": await _answers(redis.ping()),
        }

    return health_check


async def _answers(probe: Any) -> bool:
    try:
        await asyncio.wait_for(probe, 2)
        return True
    except Exception:
        return False
