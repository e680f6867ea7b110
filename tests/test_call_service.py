"""The call service over in-memory ports: what it promises on top of the pure machine — a
transition lost to another node is decided again on the winner's state and sends nothing,
a stale busy link does not make anyone busy, the sweep times a call out once.

The in-memory ``LiveCalls`` keeps the one promise of the Redis store that matters here:
``update`` commits only if nobody changed the call since ``decide`` read it, else runs
``decide`` again on the fresh fields. The race over real Redis and two hub processes is in
``tests/test_calls.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.calls.livekit import LiveKitInstances
from hub.calls.service import CallParty, CallService
from hub.errors import Conflict
from hub.fanout import Delivery
from hub.push.enqueue import NoPushes
from hub.settings import LiveKitInstanceConfig
from storage.redis.calls import CallWrite
from storage.sql.calls import FinishedCall

ALICE, BOB, CAROL = (f"0000000{n}-0000-4000-8000-000000000000" for n in (1, 2, 3))
T0 = 1_700_000_000_000
RING_SECONDS = 30


@dataclass
class MemoryLiveCalls:
    calls: dict[str, dict[str, str]] = field(default_factory=dict)
    deadlines: dict[str, int] = field(default_factory=dict)
    user_calls: dict[str, str] = field(default_factory=dict)
    # Runs once between a decision and its commit: another node acting on the same call.
    before_commit: Callable[[], Awaitable[Any]] | None = None
    decisions: int = 0

    def _store(self, call_id: str, write: CallWrite) -> None:
        if write.fields is None or write.deadline is None:
            self.calls.pop(call_id, None)
            self.deadlines.pop(call_id, None)
        else:
            self.calls[call_id] = dict(write.fields)
            self.deadlines[call_id] = write.deadline
        for user in write.link_users:
            self.user_calls[user] = call_id
        for user in write.unlink_users:
            if self.user_calls.get(user) == call_id:
                del self.user_calls[user]

    async def create(self, call_id: str, write: CallWrite) -> None:
        self._store(call_id, write)

    async def load(self, call_id: str) -> dict[str, str] | None:
        fields = self.calls.get(call_id)
        return dict(fields) if fields else None

    async def update(
        self, call_id: str, decide: Callable[[dict[str, str] | None], tuple[CallWrite | None, Any]]
    ) -> Any:
        while True:
            read = await self.load(call_id)
            self.decisions += 1
            write, result = decide(read)
            if write is None:
                return result
            if self.before_commit is not None:
                interleaved, self.before_commit = self.before_commit, None
                await interleaved()
            if await self.load(call_id) != read:
                continue  # another node changed the call: decide again on what it stored
            self._store(call_id, write)
            return result

    async def active_calls_of(self, user_ids: Collection[str]) -> dict[str, str]:
        return {u: self.user_calls[u] for u in user_ids if u in self.user_calls}

    async def claim_due(self, *, now_ms: int, lease_ms: int) -> list[str]:
        due = [c for c, deadline in self.deadlines.items() if deadline <= now_ms]
        for call_id in due:
            self.deadlines[call_id] = now_ms + lease_ms
        return due

    async def forget_deadline(self, call_id: str) -> None:
        self.deadlines.pop(call_id, None)


@dataclass
class MemoryHistory:
    recorded: dict[str, FinishedCall] = field(default_factory=dict)

    async def record(self, call: FinishedCall, participants: Sequence[str]) -> None:
        self.recorded.setdefault(call.id, call)

    async def calls_of(
        self, user_id: str, *, before_started_at: int, before_id: str, limit: int
    ) -> list[FinishedCall]:
        raise AssertionError("not used here")


class Contacts:
    """Everyone may call everyone; there are no bands."""

    async def band_member_ids(self, band_id: str) -> set[str]:
        return set()

    async def visible_among(self, user_id: str, others: list[str]) -> set[str]:
        return set(others)


@dataclass(frozen=True)
class Name:
    name: str


class Names:
    async def get(self, user_id: str) -> Name | None:
        return Name(user_id[:8])


@dataclass
class Collected:
    delivered: list[Delivery] = field(default_factory=list)

    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        self.delivered.extend(deliveries)

    def sent(self, event: str) -> list[tuple[str, str | None]]:
        return [(d.user_id, d.except_conn) for d in self.delivered if d.event == event]


@dataclass
class World:
    service: CallService
    live: MemoryLiveCalls
    history: MemoryHistory
    fanout: Collected
    now: list[int]


@pytest.fixture
def world() -> World:
    live, history, fanout, now = MemoryLiveCalls(), MemoryHistory(), Collected(), [T0]
    config = LiveKitInstanceConfig("main", "wss://lk.example", "https://lk.example", "k", "s" * 32)
    service = CallService(
        calls=live,
        history=history,
        memberships=Contacts(),
        users=Names(),
        livekit=LiveKitInstances([config], token_seconds=600),
        fanout=fanout,  # type: ignore[arg-type]  (only deliver is used)
        clock=lambda: now[0],
        ring_seconds=RING_SECONDS,
        max_seconds=3600,
        pushes=NoPushes(),
    )
    return World(service, live, history, fanout, now)


async def _ring(world: World, callee: str = BOB) -> str:
    invitation = await world.service.invite(
        CallParty(ALICE, "alice-phone"), to=callee, band=None, instance="main", media="audio"
    )
    return invitation.call.id


async def test_an_accept_that_loses_the_race_is_decided_again_and_sends_nothing(world: World):
    call_id = await _ring(world)
    tablet = CallParty(BOB, "bob-tablet")
    world.live.before_commit = lambda: world.service.accept(tablet, call_id)
    with pytest.raises(Conflict):
        await world.service.accept(CallParty(BOB, "bob-phone"), call_id)
    # The phone decided twice (its first decision lost), the tablet once.
    assert world.live.decisions == 3
    assert world.fanout.sent("call:accepted") == [(ALICE, None)]
    assert world.fanout.sent("call:answered_elsewhere") == [(BOB, "bob-tablet")]
    assert world.live.user_calls == {ALICE: call_id, BOB: call_id}


async def test_a_stale_busy_link_rings_and_a_live_one_is_busy(world: World):
    world.live.user_calls[BOB] = "a-call-that-redis-forgot"
    first = await _ring(world)
    assert world.fanout.sent("call:incoming") == [(BOB, None)]
    await world.service.accept(CallParty(BOB, "bob-phone"), first)
    invitation = await world.service.invite(
        CallParty(CAROL, "carol-phone"), to=BOB, band=None, instance="main", media="video"
    )
    assert invitation.call.outcome == "busy" and invitation.grant is None
    assert world.fanout.sent("call:busy") == [(CAROL, None)]
    assert world.history.recorded[invitation.call.id].outcome == "busy"
    assert invitation.call.id not in world.live.calls


async def test_the_sweep_times_a_call_out_once_and_records_it(world: World):
    call_id = await _ring(world)
    world.now[0] = T0 + RING_SECONDS * 1000 - 1
    await world.service.sweep_once()
    assert world.fanout.sent("call:missed") == [] and call_id in world.live.calls
    world.now[0] = T0 + RING_SECONDS * 1000
    await world.service.sweep_once()
    await world.service.sweep_once()
    assert sorted(world.fanout.sent("call:missed")) == sorted([(ALICE, None), (BOB, None)])
    assert world.live.calls == {} and world.live.deadlines == {}
    assert world.history.recorded[call_id].outcome == "missed"
