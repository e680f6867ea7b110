"""The shared push queue against a real Redis: what concurrency between nodes (and between
the jobs one node handles at once) must not break."""

from __future__ import annotations

import redis.asyncio as aioredis

from storage.redis.keys import RedisKeys
from storage.redis.push_queue import RedisPushQueue


async def test_a_bursts_last_push_keeps_the_newest_message(test_env):
    """Jobs of one burst are handled concurrently, so the older one may schedule the burst's
    last push after the newer one did: the push must still name the newest message (the
    load test's push mix found conversations whose last message was never pushed)."""
    redis = aioredis.Redis.from_url(test_env.servers.redis_url)
    queue = RedisPushQueue(redis, RedisKeys(test_env.redis_prefix), consumer="node-a")
    try:
        await queue.ensure_group()
        await queue.schedule_latest([("last:window", b"seq 7", 1_000, 7)])
        await queue.schedule_latest([("last:window", b"seq 3", 5_000, 3)])  # handled late
        assert await queue.promote_due(999) == 0
        assert await queue.promote_due(1_000) == 1, "the first due time stands"
        assert [j.job for j in await queue.read(10, 100)] == [b"seq 7"]
        # The window's next burst starts afresh: nothing of the last one is left behind.
        await queue.schedule_latest([("last:window", b"next burst", 2_000, 9)])
        assert await queue.promote_due(2_000) == 1
        assert [j.job for j in await queue.read(10, 100)] == [b"next burst"]
        order_key = f"{test_env.redis_prefix}:push:delayed_order"
        assert await redis.hlen(order_key) == 0, "promoted jobs leave no order behind"
    finally:
        await redis.aclose()
