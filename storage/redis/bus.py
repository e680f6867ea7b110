"""Redis pub/sub between hub nodes: one channel per node, one for presence.

A node publishes to another node only what that node's devices need, batched: frames queued
in one event-loop turn go out as one PUBLISH per target node. The listener reconnects by
itself when Redis goes away and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

import orjson
from redis.asyncio.client import Redis
from redis.exceptions import RedisError

from storage.redis.keys import RedisKeys

log = logging.getLogger(__name__)

FrameHandler = Callable[[list[object]], Awaitable[None]]


class RedisNodeBus:
    def __init__(self, redis: Redis, keys: RedisKeys, node_id: str) -> None:
        self._redis = redis
        self._keys = keys
        self._node_id = node_id
        self._pending: dict[str, list[object]] = defaultdict(list)
        self._flush_scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    @property
    def node_id(self) -> str:
        return self._node_id

    def send_to_node(self, node_id: str, frame: object) -> None:
        """Queue a frame for another node; it leaves with this loop turn's batch."""
        self._pending[node_id].append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batches, self._pending = self._pending, defaultdict(list)
        task = asyncio.get_running_loop().create_task(self._publish_batches(batches))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _publish_batches(self, batches: dict[str, list[object]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for node_id, frames in batches.items():
                    pipe.publish(self._keys.node_channel(node_id), orjson.dumps(frames))
                await pipe.execute()
        except RedisError:
            log.warning("could not publish %d frame batches to other nodes", len(batches))

    async def announce_presence(self, change: object) -> None:
        await self._redis.publish(self._keys.presence_channel(), orjson.dumps([change]))

    async def drain(self) -> None:
        """Wait for the batches already queued to be published."""
        if self._flush_scheduled:
            await asyncio.sleep(0)
        if self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)

    async def listen(self, on_node_frames: FrameHandler, on_presence: FrameHandler) -> None:
        """Deliver this node's frames and every presence change until cancelled."""
        own_channel = self._keys.node_channel(self._node_id).encode()
        presence_channel = self._keys.presence_channel().encode()
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(own_channel, presence_channel)
                self.connected.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    frames = orjson.loads(message["data"])
                    handler = on_node_frames if message["channel"] == own_channel else on_presence
                    try:
                        await handler(frames)
                    except Exception:
                        log.exception("a bus frame handler failed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("Redis pub/sub lost (%s); reconnecting in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
