"""The Redis client the hub uses: a blocking pool, so a burst waits for a connection
instead of failing (redis-py's default async pool raises past its limit)."""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.asyncio.client import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def open_redis(url: str, *, max_connections: int, client_name: str | None = None) -> Redis:
    """``client_name`` names every connection (``CLIENT LIST`` then tells which node holds
    which: ``<REDIS_PREFIX>:<NODE_ID>``)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        client_name=client_name,
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


def subscriber_of(redis: Redis) -> Redis:
    """A one-connection client to the same server, for one pub/sub subscription, that never
    reconnects by itself. redis-py's retry reconnects a dropped subscription and subscribes
    again silently, so its user would never learn that what was published meanwhile is
    gone; without it the drop is an error the listener sees (``storage/redis/pubsub.py``)."""
    pool = redis.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    # from_pool: the client owns its pool, and closing the client closes the connection.
    return Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **kwargs)
    )
