"""Live calls in Redis, so any node can accept, cancel or time out any call.

One HASH per call, a ZSET of deadlines every node sweeps (claimed by Lua, with a lease), and
a per-user key naming the answered call the user is in. Every key has a TTL, so a call that
every node forgot still disappears. A change is a WATCH/MULTI transaction on the call's
hash: when two nodes change one call at once, one of them retries from the new state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from redis.asyncio.client import Redis
from redis.exceptions import WatchError

from storage.failures import StorageUnavailable, translates_failures
from storage.redis.client import lua_source
from storage.redis.keys import RedisKeys

Result = TypeVar("Result")
MAX_ATTEMPTS = 50


class CallContended(StorageUnavailable):
    """The call kept changing under us: ``MAX_ATTEMPTS`` transactions lost in a row."""


@dataclass(frozen=True, slots=True)
class CallWrite:
    """What one transition stores. ``fields=None`` deletes the call (it is over)."""

    fields: dict[str, str] | None
    deadline: int | None
    ttl_ms: int
    link_users: Sequence[str] = ()
    unlink_users: Sequence[str] = ()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@translates_failures
class RedisCallStore:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(lua_source("claim_due_calls"))

    async def create(self, call_id: str, write: CallWrite) -> None:
        assert write.fields is not None and write.deadline is not None
        key = self._keys.call(call_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=write.fields)  # type: ignore[arg-type]
            pipe.pexpire(key, write.ttl_ms)
            pipe.zadd(self._keys.call_deadlines(), {call_id: write.deadline})
            await pipe.execute()

    async def load(self, call_id: str) -> dict[str, str] | None:
        raw = await self._redis.hgetall(self._keys.call(call_id))
        return {_text(k): _text(v) for k, v in raw.items()} or None

    async def update(
        self,
        call_id: str,
        decide: Callable[[dict[str, str] | None], tuple[CallWrite | None, Result]],
    ) -> Result:
        """Read the call, let ``decide`` compute what to store (``None``: nothing), and store it
        only if nobody changed the call meanwhile; otherwise ``decide`` runs again on the
        fresh fields. ``decide`` may raise to refuse: nothing is stored."""
        key = self._keys.call(call_id)
        for _ in range(MAX_ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    fields = {_text(k): _text(v) for k, v in raw.items()} or None
                    write, result = decide(fields)
                    if write is None:
                        return result
                    unlink: list[str] = []
                    if write.unlink_users:
                        user_keys = [self._keys.user_call(u) for u in write.unlink_users]
                        await pipe.watch(*user_keys)
                        current = await pipe.mget(user_keys)
                        unlink = [
                            k
                            for k, v in zip(user_keys, current, strict=True)
                            if v is not None and _text(v) == call_id
                        ]
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    if write.fields is None or write.deadline is None:
                        pipe.zrem(self._keys.call_deadlines(), call_id)
                    else:
                        pipe.hset(key, mapping=write.fields)  # type: ignore[arg-type]
                        pipe.pexpire(key, write.ttl_ms)
                        pipe.zadd(self._keys.call_deadlines(), {call_id: write.deadline})
                    for user in write.link_users:
                        pipe.set(self._keys.user_call(user), call_id, px=write.ttl_ms)
                    if unlink:
                        pipe.delete(*unlink)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise CallContended(f"call {call_id} changed {MAX_ATTEMPTS} times while we tried")

    async def active_calls_of(self, user_ids: Collection[str]) -> dict[str, str]:
        """The answered call each user is in, if any (an expired or stale link may remain:
        the caller checks the call itself)."""
        users = list(user_ids)
        if not users:
            return {}
        values = await self._redis.mget([self._keys.user_call(u) for u in users])
        return {u: _text(v) for u, v in zip(users, values, strict=True) if v is not None}

    async def claim_due(self, *, now_ms: int, lease_ms: int, limit: int = 100) -> list[str]:
        """Calls whose deadline passed, claimed by this node for ``lease_ms``."""
        due = await self._claim(keys=[self._keys.call_deadlines()], args=[now_ms, lease_ms, limit])
        return [_text(item) for item in due]

    async def live_call_ids(self) -> list[str]:
        """Every call that has not ended (each has a deadline while it lives). Read only when
        a block or a membership end must find the calls between particular people."""
        ids = await self._redis.zrange(self._keys.call_deadlines(), 0, -1)
        return [_text(cast("bytes | str", item)) for item in ids]

    async def forget_deadline(self, call_id: str) -> None:
        """For a deadline whose call is gone (its hash expired)."""
        await self._redis.zrem(self._keys.call_deadlines(), call_id)
