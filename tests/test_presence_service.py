"""The presence service's rules, with in-memory ports and the transport's real registry.

Who may watch whom, what a revocation that crosses a subscription does, when a user comes
online and goes offline: fast, without a hub process (the wire is in test_presence.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import pytest

from handlers.registry import ConnectionRegistry, ConnectionState
from hub.errors import Conflict, Forbidden, RateLimited, TooLarge
from hub.fanout import UserPresence
from hub.presence.service import MAX_WATCHED_USERS, PresenceService
from hub.presence.views import PresenceView, presence_view
from hub.rate_limits import TokenBucket
from storage.redis.presence import Connected, LiveConnection, StoredPresence
from tests.support.fake_fanout import MemoryFanout

TTL_MS = 30_000


@dataclass
class MemoryLiveDevices:
    """Live connections and their expiries (what the Lua scripts keep in Redis)."""

    expiries: dict[LiveConnection, int] = field(default_factory=dict)
    last_seen: dict[str, int] = field(default_factory=dict)

    def _live(self, user_id: str, now_ms: int) -> list[LiveConnection]:
        return [c for c, e in self.expiries.items() if c.user_id == user_id and e > now_ms]

    async def connect(self, conn: LiveConnection, *, now_ms: int, max_devices: int) -> Connected:
        live = self._live(conn.user_id, now_ms)
        if len(live) >= max_devices:
            return Connected("too_many_devices", [])
        self.expiries[conn] = now_ms + TTL_MS
        return Connected("already_online" if live else "came_online", [])

    async def disconnect(self, conn: LiveConnection, *, now_ms: int) -> bool:
        self.expiries.pop(conn, None)
        if self._live(conn.user_id, now_ms):
            return False
        self.last_seen[conn.user_id] = now_ms
        return True

    async def refresh(self, conns: Sequence[LiveConnection], *, now_ms: int) -> list[str]:
        back = {c.user_id for c in conns if not self._live(c.user_id, now_ms)}
        for conn in conns:
            self.expiries[conn] = now_ms + TTL_MS
        return sorted(back)

    async def sweep(self, *, now_ms: int) -> list[tuple[str, int]]:
        expired = [c for c, e in self.expiries.items() if e <= now_ms]
        for conn in expired:
            del self.expiries[conn]
        gone = {c.user_id for c in expired if not self._live(c.user_id, now_ms)}
        return [(user, now_ms) for user in sorted(gone)]

    async def presence_of(self, user_ids: Collection[str], *, now_ms: int) -> list[StoredPresence]:
        return [
            StoredPresence(u, bool(self._live(u, now_ms)), self.last_seen.get(u)) for u in user_ids
        ]


@dataclass
class MemorySpaces:
    """Who shares a band or a conversation with whom; ``during_check`` runs inside every
    visibility query, after its answer was read (a revocation racing with it)."""

    shared: set[frozenset[str]] = field(default_factory=set)
    during_check: Callable[[], None] | None = None
    checks: int = 0

    def share(self, a: str, b: str) -> None:
        self.shared.add(frozenset((a, b)))

    async def visible_among(self, user_id: str, others: list[str]) -> set[str]:
        self.checks += 1
        answer = {o for o in others if frozenset((user_id, o)) in self.shared}
        if self.during_check is not None:
            self.during_check()
        return answer


@dataclass
class MemoryLastSeen:
    durable: dict[str, int | None] = field(default_factory=dict)

    async def set_last_seen(self, user_id: str, last_seen_ms: int) -> None:
        self.durable[user_id] = last_seen_ms

    async def last_seen_of(self, user_ids: list[str]) -> dict[str, int | None]:
        return {u: self.durable[u] for u in user_ids if u in self.durable}


@dataclass
class World:
    devices: MemoryLiveDevices
    spaces: MemorySpaces
    last_seen: MemoryLastSeen
    fanout: MemoryFanout
    connections: ConnectionRegistry
    presence: PresenceService
    now: list[int]

    def connection_of(self, user_id: str, sid: str = "sid-1") -> ConnectionState:
        state = ConnectionState(
            sid=sid,
            user_id=user_id,
            session_id=f"session-{sid}",
            device_id="phone",
            conn_id=f"conn-{sid}",
            eio_sid=f"eio-{sid}",
            bucket=TokenBucket(10, 10, 0.0),
            token_expires_at_ms=self.now[0] + 60_000,
        )
        self.connections.add(state)
        return state

    def revoke(self, viewer: str, other: str) -> None:
        """What a membership ending does: the store forgets the pair, the node applies it."""
        self.spaces.shared.discard(frozenset((viewer, other)))
        self.connections.revoke(viewer, [other])


@pytest.fixture
def world() -> World:
    now = [1_764_700_000_000]
    devices, spaces, last_seen, fanout = (
        MemoryLiveDevices(),
        MemorySpaces(),
        MemoryLastSeen(),
        MemoryFanout(),
    )
    presence = PresenceService(
        devices=devices,
        memberships=spaces,
        last_seen=last_seen,
        fanout=fanout,
        clock=lambda: now[0],
        node_id="node-a",
        ttl_seconds=TTL_MS // 1000,
        max_devices_per_user=2,
    )
    return World(devices, spaces, last_seen, fanout, ConnectionRegistry(), presence, now)


async def test_the_first_device_brings_a_user_online_and_the_last_takes_them_offline(
    world: World,
) -> None:
    await world.presence.connect("bob", "phone", "c1")
    await world.presence.connect("bob", "laptop", "c2")
    assert world.fanout.announced == [UserPresence("bob", "online", None)]
    await world.presence.disconnect("c1")
    assert len(world.fanout.announced) == 1
    world.now[0] += 5_000
    await world.presence.disconnect("c2")
    assert world.fanout.announced[-1] == UserPresence("bob", "offline", world.now[0])
    assert world.last_seen.durable["bob"] == world.now[0]


async def test_a_device_past_the_limit_is_refused_and_not_recorded(world: World) -> None:
    await world.presence.connect("bob", "phone", "c1")
    await world.presence.connect("bob", "laptop", "c2")
    with pytest.raises(RateLimited):
        await world.presence.connect("bob", "tablet", "c3")
    await world.presence.disconnect("c3")  # never recorded: nothing to take offline
    assert len(world.devices.expiries) == 2


async def test_a_heartbeat_brings_back_what_redis_lost_and_the_sweep_takes_the_dead_offline(
    world: World,
) -> None:
    await world.presence.connect("bob", "phone", "c1")
    world.devices.expiries.clear()  # Redis restarted empty
    await world.presence.heartbeat_once()
    assert world.fanout.announced[-1] == UserPresence("bob", "online", None)
    dead = LiveConnection("carol", "node-b", "c9", "phone")
    world.devices.expiries[dead] = world.now[0] + 1
    world.now[0] += 10
    await world.presence.heartbeat_once()
    assert world.fanout.announced[-1] == UserPresence("carol", "offline", world.now[0])


async def test_presence_of_a_stranger_is_refused_as_a_whole_and_nothing_is_watched(
    world: World,
) -> None:
    alice = world.connection_of("alice")
    world.spaces.share("alice", "bob")
    with pytest.raises(Forbidden) as refused:
        await world.presence.subscribe("alice", ["bob", "stranger"], alice.caller)
    assert refused.value.details == {"users": ["stranger"]}
    assert alice.watching == set()


async def test_a_subscription_watches_and_answers_the_current_presence(world: World) -> None:
    alice = world.connection_of("alice")
    world.spaces.share("alice", "bob")
    world.last_seen.durable["bob"] = 1_700_000_000_000
    answer = await world.presence.subscribe("alice", ["bob", "alice", "bob"], alice.caller)
    assert answer == [
        UserPresence("bob", "offline", 1_700_000_000_000),  # Redis forgot; the database did not
        UserPresence("alice", "offline", None),
    ]
    assert set(world.connections.watchers_of("bob")) == {alice}
    assert set(world.connections.watchers_of("alice")) == {alice}  # oneself is always visible


async def test_a_revocation_during_the_check_is_not_undone_by_the_watch(world: World) -> None:
    alice = world.connection_of("alice")
    world.spaces.share("alice", "bob")
    world.spaces.during_check = lambda: world.revoke("alice", "bob")
    with pytest.raises(Forbidden):
        await world.presence.subscribe("alice", ["bob"], alice.caller)
    assert world.spaces.checks == 2  # checked again after the revocation landed
    assert list(world.connections.watchers_of("bob")) == []


async def test_a_revocation_for_another_viewer_does_not_make_a_subscription_check_again(
    world: World,
) -> None:
    alice = world.connection_of("alice")
    world.connection_of("carol", sid="sid-2")
    world.spaces.share("alice", "bob")
    world.spaces.during_check = lambda: world.revoke("carol", "bob")
    await world.presence.subscribe("alice", ["bob"], alice.caller)
    assert world.spaces.checks == 1
    assert set(world.connections.watchers_of("bob")) == {alice}


async def test_revocations_racing_every_check_ask_the_client_to_subscribe_again(
    world: World,
) -> None:
    alice = world.connection_of("alice")
    world.spaces.share("alice", "bob")
    world.spaces.during_check = lambda: world.connections.revoke("alice", ["dave"])
    with pytest.raises(Conflict):
        await world.presence.subscribe("alice", ["bob"], alice.caller)
    assert world.spaces.checks == 3
    assert alice.watching == set()


async def test_a_connection_may_watch_only_so_many_users(world: World) -> None:
    alice = world.connection_of("alice")
    users = [f"user-{i}" for i in range(MAX_WATCHED_USERS + 1)]
    for user in users:
        world.spaces.share("alice", user)
    await world.presence.subscribe("alice", users[:MAX_WATCHED_USERS], alice.caller)
    with pytest.raises(TooLarge):
        await world.presence.subscribe("alice", users[MAX_WATCHED_USERS:], alice.caller)
    assert len(alice.watching) == MAX_WATCHED_USERS


def test_the_presence_view_is_what_its_model_says() -> None:
    for presence in (UserPresence("u1", "online", None), UserPresence("u1", "offline", 17)):
        assert PresenceView.model_validate(presence_view(presence)).userId == "u1"
