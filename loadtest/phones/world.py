"""One worker's phones: users, conversation pairs, the interval counters, and the ``World``
that routes socket events to the activities plugged into it.

Every behaviour lives in an ``Activity`` (``direct.py``, ``chat.py``, ``recovery.py``): the
world only knows who is connected and which activity wants which event, so adding band
messages or calls means adding an activity, not changing the world.
"""

from __future__ import annotations

import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loadtest.crypto import Channel, KeyPair
from loadtest.pipe import Interval
from loadtest.plan import Mix
from loadtest.protocol import BaseSocket

NS = 1_000_000_000


class Progress(Protocol):
    """How a setup phase (register, connect) tells the parent how far it got."""

    def __call__(self, phase: str, done: int, total: int, force: bool = False) -> None: ...


@dataclass(eq=False)
class User:
    index: int
    role: str  # sender | recipient | churner | idle
    url: str
    user_id: str = ""
    token: str = ""
    keys: KeyPair = field(default_factory=KeyPair.generate)
    device: str = ""
    offline: bool = False  # the push mix: never connects; its messages become pushes
    sock: BaseSocket | None = None
    disconnects: int = 0
    first_loss_ns: int = 0  # when it first lost its connection (0: never)
    pending_delivered: list[str] = field(default_factory=list)
    flush_armed: bool = False
    watching: list[str] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return self.sock is not None and self.sock.connected


@dataclass(eq=False)
class Pair:
    index: int
    sender: User
    recipient: User
    seal_channel: Channel | None = None
    open_channel: Channel | None = None
    started: bool = False  # the conversation exists (an acked message): typing is allowed


class Stats:
    """What a worker counts between two ticks; the parent keeps the running totals."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.ack = array("d")  # flattened (send second, latency ms)
        self.e2e = array("d")
        self.other_ack = array("d")  # receipts and typing: latency ms
        self.sent_by_second: Counter[int] = Counter()
        self.max_lag_ms = 0.0

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def error(self, code: str, n: int = 1) -> None:
        self.errors[code] += n

    def take(self) -> Interval:
        """The interval's numbers, and reset them."""
        out = Interval(
            counters=dict(self.counters),
            errors=dict(self.errors),
            ack=self.ack.tobytes(),
            e2e=self.e2e.tobytes(),
            other_ack=self.other_ack.tobytes(),
            sent_by_second=dict(self.sent_by_second),
            max_lag_ms=self.max_lag_ms,
        )
        self.counters = Counter()
        self.errors = Counter()
        self.ack = array("d")
        self.e2e = array("d")
        self.other_ack = array("d")
        self.sent_by_second = Counter()
        self.max_lag_ms = 0.0
        return out


class World:
    """One worker's users, sockets and activities."""

    def __init__(self, mix: Mix, seed: int) -> None:
        self.mix = mix
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.users: list[User] = []
        self.pairs: list[Pair] = []
        self.churners: list[User] = []
        self.activities: list[Activity] = []
        self.handlers: dict[str, list[Callable[[User, Any], None]]] = {}
        self.start_ns = 0
        self.sending = False
        self.closing = False
        self.reconnect: Callable[[User], Any] | None = None
        self.disconnect_hooks: list[Callable[[User], None]] = []

    def add(self, activity: Activity) -> None:
        self.activities.append(activity)
        for event, handler in activity.events().items():
            self.handlers.setdefault(event, []).append(handler)

    def on_event(self, sock: BaseSocket, event: str, data: Any) -> None:
        user: User = sock.tag
        handlers = self.handlers.get(event)
        if handlers is None:
            self.stats.count(f"event:{event}")
            return
        for handler in handlers:
            handler(user, data)

    def on_disconnect(self, sock: BaseSocket) -> None:
        user: User = sock.tag
        if self.closing:
            return
        user.disconnects += 1
        if not user.first_loss_ns:
            user.first_loss_ns = time.monotonic_ns()
        self.stats.count("disconnects")
        for hook in self.disconnect_hooks:
            hook(user)

    def connected_count(self) -> int:
        return sum(1 for u in self.users if u.connected)

    def rel_s(self, ns: int) -> float:
        return (ns - self.start_ns) / NS

    def ack_error(self, event: str, ack: Any) -> None:
        code = "bad_ack"
        if isinstance(ack, dict):
            error = ack.get("error")
            if isinstance(error, dict):
                code = str(error.get("code", "unknown"))
        self.stats.error(f"{event}:{code}")


class Activity:
    paced = False
    weight = 1.0

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {}

    async def setup(self, world: World) -> None:
        """After every socket is connected, before the clock starts."""

    def start(self, world: World) -> None:
        """When the clock starts: start background tasks."""

    def fire(self, world: World, intended_ns: int) -> None:
        """Paced activities: one action due at ``intended_ns``."""

    def busy(self) -> bool:
        """Still waiting for acks or deliveries: the drain waits for it."""
        return False

    async def stop(self) -> None:
        """Sending is over: stop background tasks."""

    async def settle(self, world: World) -> None:
        """After the drain, before the final numbers (e.g. a last sync)."""

    def gauges(self, world: World) -> dict[str, int]:
        """Levels for this second's tick (summed over workers), e.g. sockets per node."""
        return {}
