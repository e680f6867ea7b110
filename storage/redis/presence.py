"""Which connections are live, on which node, and when each user was last seen.

Every connection is a member of its user's ZSET scored by its expiry; the owning node pushes
the expiry forward on each heartbeat. A node that dies stops doing so, and any node's sweep
removes its connections once they expire. The scripts live in ``storage/lua``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio.client import Redis

from storage.failures import translates_failures
from storage.redis.client import lua_source
from storage.redis.keys import RedisKeys

KEY_TTL_MARGIN_MS = 60_000

ConnectOutcome = Literal["came_online", "already_online", "too_many_devices"]
# What ``connect_device.lua`` answers.
_CONNECT_OUTCOMES: dict[int, ConnectOutcome] = {
    1: "came_online",
    0: "already_online",
    -1: "too_many_devices",
}


@dataclass(frozen=True, slots=True)
class Connected:
    """What a connect did: the outcome, and the connections of the same device it replaced
    (each as ``(node_id, conn_id)``)."""

    outcome: ConnectOutcome
    replaced: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class LiveConnection:
    user_id: str
    node_id: str
    conn_id: str
    device_id: str

    @property
    def member(self) -> str:
        return f"{self.node_id}|{self.conn_id}|{self.device_id}"

    @property
    def global_member(self) -> str:
        return f"{self.user_id}|{self.member}"


@dataclass(frozen=True, slots=True)
class StoredPresence:
    user_id: str
    online: bool
    last_seen_ms: int | None


@translates_failures
class RedisDeviceRegistry:
    def __init__(self, redis: Redis, keys: RedisKeys, *, ttl_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = ttl_ms
        self._connect = redis.register_script(lua_source("connect_device"))
        self._disconnect = redis.register_script(lua_source("disconnect_device"))
        self._refresh = redis.register_script(lua_source("refresh_devices"))
        self._sweep = redis.register_script(lua_source("sweep_expired_devices"))

    async def connect(self, conn: LiveConnection, *, now_ms: int, max_devices: int) -> Connected:
        """Record the connection, unless the user already has ``max_devices`` others; an
        earlier connection of the same device is replaced (and returned)."""
        result = await self._connect(
            keys=[self._keys.user_devices(conn.user_id), self._keys.device_expiries()],
            args=[
                conn.member,
                now_ms + self._ttl_ms,
                now_ms,
                max_devices,
                conn.global_member,
                self._ttl_ms + KEY_TTL_MARGIN_MS,
                conn.device_id,
                conn.user_id,
            ],
        )
        code, *members = result
        replaced = []
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            node_id, conn_id, _ = text.split("|", 2)
            replaced.append((node_id, conn_id))
        return Connected(_CONNECT_OUTCOMES[int(code)], replaced)

    async def disconnect(self, conn: LiveConnection, *, now_ms: int) -> bool:
        """True when that was the user's last live connection anywhere."""
        result = await self._disconnect(
            keys=[
                self._keys.user_devices(conn.user_id),
                self._keys.device_expiries(),
                self._keys.last_seen(conn.user_id),
            ],
            args=[conn.member, conn.global_member, now_ms],
        )
        return bool(result)

    async def refresh(self, conns: Sequence[LiveConnection], *, now_ms: int) -> list[str]:
        """Push back the expiry of these connections, registering any that Redis lost;
        returns the users who were offline in Redis and are online again."""
        batch = 500
        back: list[str] = []
        for start in range(0, len(conns), batch):
            args: list[str | int] = [
                now_ms + self._ttl_ms,
                self._ttl_ms + KEY_TTL_MARGIN_MS,
                self._keys.prefix,
            ]
            for conn in conns[start : start + batch]:
                args += [conn.user_id, conn.member, conn.global_member]
            users = await self._refresh(keys=[self._keys.device_expiries()], args=args)
            back += [u.decode() if isinstance(u, bytes) else str(u) for u in users]
        return back

    async def sweep(self, *, now_ms: int, limit: int = 1000) -> list[tuple[str, int]]:
        """Remove expired connections; (user, last_seen_ms) for each user now offline."""
        flat = await self._sweep(
            keys=[self._keys.device_expiries()],
            args=[self._keys.prefix, now_ms, limit, self._ttl_ms],
        )
        values = [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
        return [(values[i], int(values[i + 1])) for i in range(0, len(values), 2)]

    async def presence_of(self, user_ids: Collection[str], *, now_ms: int) -> list[StoredPresence]:
        users = list(user_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zcount(self._keys.user_devices(user), now_ms, "+inf")
                pipe.get(self._keys.last_seen(user))
            replies = await pipe.execute()
        out = []
        for index, user in enumerate(users):
            live, seen = replies[2 * index], replies[2 * index + 1]
            out.append(StoredPresence(user, int(live) > 0, int(seen) if seen else None))
        return out

    async def nodes_of(self, user_ids: Collection[str], *, now_ms: int) -> dict[str, set[str]]:
        """The nodes holding a live connection of each user (users with none are left out)."""
        users = list(user_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zrangebyscore(self._keys.user_devices(user), now_ms, "+inf")
            replies = await pipe.execute()
        out: dict[str, set[str]] = {}
        for user, members in zip(users, replies, strict=True):
            if members:
                out[user] = {m.split(b"|", 1)[0].decode() for m in members}
        return out

    async def devices_online(self, user_id: str, *, now_ms: int) -> set[str]:
        """The device ids of the user's live connections, on any node."""
        members = await self._redis.zrangebyscore(self._keys.user_devices(user_id), now_ms, "+inf")
        names = (m.decode() if isinstance(m, bytes) else str(m) for m in members)
        return {name.rsplit("|", 1)[1] for name in names}

    async def devices_online_of(
        self, user_ids: Collection[str], *, now_ms: int
    ) -> dict[str, set[str]]:
        """The device ids with a live socket on any node, per user, in one round trip."""
        users = list(user_ids)
        if not users:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zrangebyscore(self._keys.user_devices(user), now_ms, "+inf")
            replies = await pipe.execute()
        return {
            user: {(m.decode() if isinstance(m, bytes) else str(m)).rsplit("|", 1)[1] for m in ms}
            for user, ms in zip(users, replies, strict=True)
        }
