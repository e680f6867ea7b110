"""Redis pub/sub between hub nodes: one channel per node, and one that every node hears.

The bus carries bytes: what a message holds (frames, encoded and decoded in
``hub/fanout.py``) is not its business, as in python-socketio's pub/sub managers, where a
backend adds only publish and listen. The listener reconnects by itself when Redis goes
away and comes back (``storage/redis/pubsub.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from redis.asyncio.client import Redis

from storage.failures import translates_failures
from storage.redis.keys import RedisKeys
from storage.redis.pubsub import MessageHandler, listen_forever


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
        cancelled (``storage/redis/pubsub.py`` reconnects); ``connected`` is set while
        subscribed."""

        async def subscribed() -> None:
            self.connected.set()

        async def lost() -> None:
            self.connected.clear()

        await listen_forever(
            self._redis,
            (self._keys.node_channel(self._node_id), self._keys.all_nodes_channel()),
            on_message,
            on_subscribed=subscribed,
            on_lost=lost,
        )
