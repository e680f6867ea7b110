"""The push queue every node shares: a Redis stream read through one consumer group (an
entry a dead node took is claimed by another with XAUTOCLAIM), a delayed set for retries and
for the last push of a burst, and the small sets that remember who was pushed what.

Jobs are opaque bytes here; ``hub/push/jobs.py`` says what they hold.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Redis
from redis.exceptions import ResponseError

from storage.failures import translates_failures
from storage.redis.client import lua_source
from storage.redis.keys import RedisKeys

GROUP = "pushers"
FIELD = b"j"


@dataclass(frozen=True, slots=True)
class QueuedJob:
    entry_id: str
    job: bytes


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _jobs(entries: Sequence[tuple[bytes | str, dict[bytes, bytes] | None]]) -> list[QueuedJob]:
    """Stream entries as jobs; an entry deleted meanwhile (XAUTOCLAIM gives None) is skipped."""
    out = []
    for entry_id, fields in entries:
        if fields and FIELD in fields:
            out.append(QueuedJob(_text(entry_id), fields[FIELD]))
    return out


@translates_failures
class RedisPushQueue:
    def __init__(self, redis: Redis, keys: RedisKeys, consumer: str) -> None:
        self._redis = redis
        self._keys = keys
        self._consumer = consumer
        self._stream = keys.push_stream()
        self._promote = redis.register_script(lua_source("promote_due_pushes"))
        self._schedule_latest = redis.register_script(lua_source("schedule_latest_pushes"))

    async def ensure_group(self) -> None:
        """The consumer group, from the stream's start (jobs queued before any node read)."""
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def add(self, jobs: Sequence[bytes]) -> None:
        """Queue jobs, in one round trip."""
        if not jobs:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xadd(self._stream, {FIELD: job})
            await pipe.execute()

    async def read(self, count: int, block_ms: int) -> list[QueuedJob]:
        """New jobs for this node; they stay pending (under this node's name) until ``done``."""
        reply: Any = await self._redis.xreadgroup(
            GROUP, self._consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        return [job for _stream, entries in reply or () for job in _jobs(entries)]

    async def claim_stale(self, min_idle_ms: int, count: int) -> list[QueuedJob]:
        """Jobs another node took and did not finish for ``min_idle_ms`` (it died)."""
        reply = await self._redis.xautoclaim(
            self._stream, GROUP, self._consumer, min_idle_ms, "0-0", count=count
        )
        entries: Sequence[tuple[bytes | str, dict[bytes, bytes] | None]] = reply[1]
        return _jobs(entries)

    async def done(self, entry_ids: Collection[str]) -> None:
        if not entry_ids:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, GROUP, *entry_ids)
            pipe.xdel(self._stream, *entry_ids)
            await pipe.execute()

    async def schedule(self, job_id: str, job: bytes, due_ms: int) -> None:
        """A job (a retry) to enter the stream at ``due_ms``."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.push_delayed_jobs(), job_id, job)
            pipe.zadd(self._keys.push_delayed(), {job_id: due_ms})
            await pipe.execute()

    async def schedule_latest(self, jobs: Sequence[tuple[str, bytes, int, int]]) -> None:
        """Bursts' last pushes (id, job, due ms, order), in one round trip: a scheduled job
        keeps its due time, and takes the new content only when its order is higher (jobs
        of one burst are handled concurrently, not always oldest first)."""
        if not jobs:
            return
        args: list[Any] = []
        for job_id, job, due_ms, order in jobs:
            args += [job_id, job, due_ms, order]
        keys = [
            self._keys.push_delayed(),
            self._keys.push_delayed_jobs(),
            self._keys.push_delayed_order(),
        ]
        await self._schedule_latest(keys=keys, args=args)

    async def promote_due(self, now_ms: int, limit: int = 500) -> int:
        moved = await self._promote(
            keys=[
                self._keys.push_delayed(),
                self._keys.push_delayed_jobs(),
                self._stream,
                self._keys.push_delayed_order(),
            ],
            args=[now_ms, limit],
        )
        return int(moved)

    async def depth(self) -> int:
        """Jobs queued, being handled, or waiting for a retry (every node's)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._stream)
            pipe.zcard(self._keys.push_delayed())
            queued, delayed = await pipe.execute()
        return int(queued) + int(delayed)

    async def take_windows(self, windows: Sequence[tuple[str, str, str]], ttl_ms: int) -> list[int]:
        """For each (user, device, conversation): 0 when this push opens a new coalescing
        window (send it now), else the milliseconds the current one has left."""
        if not windows:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for window in windows:
                key = self._keys.push_window(*window)
                pipe.set(key, b"1", nx=True, px=ttl_ms)
                pipe.pttl(key)
            replies = await pipe.execute()
        return [0 if replies[i] else max(1, int(replies[i + 1])) for i in range(0, len(replies), 2)]

    async def remember(self, key: str, members: Collection[str], ttl_ms: int) -> None:
        if not members:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(key, *members)
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()

    async def remember_message_push(
        self,
        key: str,
        member: str,
        ttl_ms: int,
        window: tuple[str, str, str] | None,
        window_ms: int,
    ) -> None:
        """After a message push: ``remember`` who was shown it and, when it was a burst's last
        push, open a new coalescing window with it; one round trip, the worker's most
        frequent call."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(key, member)
            pipe.pexpire(key, ttl_ms)
            if window is not None:
                pipe.set(self._keys.push_window(*window), b"1", px=window_ms)
            await pipe.execute()

    async def remembered(self, key: str) -> set[str]:
        return {_text(m) for m in await self._redis.smembers(key)}

    async def forget(self, key: str) -> None:
        await self._redis.delete(key)

    async def mark(self, key: str, ttl_ms: int) -> None:
        await self._redis.set(key, b"1", px=ttl_ms)

    async def is_marked(self, key: str) -> bool:
        return bool(await self._redis.exists(key))
