"""Redis pub/sub between hub nodes: one channel per node, and one that every node hears.

The bus carries bytes: what a message holds (frames, encoded and decoded in
``hub/fanout.py``) is not its business, as in python-socketio's pub/sub managers, where a
backend adds only publish and listen. The listener reconnects by itself when Redis goes
away and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from redis.asyncio.client import Redis
from redis.exceptions import RedisError

from storage.failures import translates_failures
from storage.redis.keys import RedisKeys

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], Awaitable[None]]


@translates_failures
class RedisNodeBus:
    def __init__(self, redis: Redis, keys: RedisKeys, node_id: str) -> None:
        self._redis = redis
        self._keys = keys
        self._node_id = node_id
        self.connected = asyncio.Event()

    @property
    def node_id(self) -> str:
        return self._node_id

    async def publish_to_nodes(self, messages: Mapping[str, bytes]) -> None:
        """One PUBLISH per node, pipelined: one round trip for the whole batch."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id, message in messages.items():
                pipe.publish(self._keys.node_channel(node_id), message)
            await pipe.execute()

    async def publish_to_all(self, message: bytes) -> None:
        await self._redis.publish(self._keys.all_nodes_channel(), message)

    async def listen(self, on_message: MessageHandler) -> None:
        """Hand over every message for this node, and every one for all nodes, until
        cancelled. A handler that fails is logged and the next message still comes."""
        own_channel = self._keys.node_channel(self._node_id)
        all_channel = self._keys.all_nodes_channel()
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(own_channel, all_channel)
                self.connected.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    try:
                        await on_message(message["data"])
                    except Exception:
                        log.exception("a bus message handler failed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("Redis pub/sub lost (%s); reconnecting in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8
