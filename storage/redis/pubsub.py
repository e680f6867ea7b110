"""One Redis pub/sub subscription that outlives Redis outages, for every listener of the hub.

Pub/sub keeps nothing for a subscriber that is away: a message published while the
connection is down is gone. So a listener learns of both edges (``on_subscribed`` once the
subscription is in place, first and after every reconnect; ``on_lost`` when it broke) and
rebuilds from the source of truth at the first, as the node bus's users and the push
audience do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio.client import Redis
from redis.exceptions import RedisError

from storage.redis.client import subscriber_of

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], Awaitable[None]]
EdgeHandler = Callable[[], Awaitable[None]]
MAX_BACKOFF_SECONDS = 5.0


async def listen_forever(
    redis: Redis,
    channels: Sequence[str],
    on_message: MessageHandler,
    *,
    on_subscribed: EdgeHandler,
    on_lost: EdgeHandler,
) -> None:
    """Hand over every message on ``channels`` until cancelled, resubscribing with backoff
    when Redis goes away. A handler that fails is logged and the next message still comes."""
    subscriber = subscriber_of(redis)
    try:
        await _listen(subscriber, channels, on_message, on_subscribed, on_lost)
    finally:
        with contextlib.suppress(Exception):
            await subscriber.aclose()


async def _listen(
    redis: Redis,
    channels: Sequence[str],
    on_message: MessageHandler,
    on_subscribed: EdgeHandler,
    on_lost: EdgeHandler,
) -> None:
    backoff = 0.1
    while True:
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            backoff = 0.1
            await on_subscribed()
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                try:
                    await on_message(message["data"])
                except Exception:
                    log.exception("a pub/sub message handler failed")
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            await on_lost()
            log.warning("Redis pub/sub lost (%s); reconnecting in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8
