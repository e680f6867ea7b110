"""The phones' behaviour, as activities plugged into one ``World`` per worker process.

* ``DirectMessages`` is *paced*: the open-loop scheduler calls ``fire(intended_ns)`` at the
  target rate, whether or not earlier sends were acked. It tracks every message id from send
  to ack to delivery, which gives ack latency, end-to-end latency (from the send time sealed
  inside the NaCl box), loss and duplicates.
* ``Receipts`` reacts to deliveries (``message:delivered`` soon, ``message:read`` for some).
* ``Typing`` sends ``typing {to, state: "start"}`` before some messages.
* ``PresenceChurn`` takes a few users off- and online while other users watch their presence.

Adding band messages or calls: write an activity with ``events`` (incoming event → handler),
optionally ``paced = True`` and ``fire()`` (it then shares the rate by ``weight``), a
``setup()`` for what must exist first (bands, memberships), and ``counters`` for the report.
The scheduler, stats, ticks and report do not change.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadtest.crypto import Channel, KeyPair, plaintext_size
from loadtest.plan import Mix
from loadtest.protocol import BaseSocket

NS = 1_000_000_000


@dataclass(eq=False)
class User:
    index: int
    role: str  # sender | recipient | churner | idle
    url: str
    user_id: str = ""
    token: str = ""
    keys: KeyPair = field(default_factory=KeyPair.generate)
    device: str = ""
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
    """What a worker counts between two ticks, plus running totals."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.ack = array("d")  # flattened (send second, latency ms)
        self.e2e = array("d")
        self.other_ack = array("d")  # receipts and typing: latency ms
        self.sent_by_second: Counter[int] = Counter()
        self.max_lag_ms = 0.0
        self.totals: Counter[str] = Counter()
        self.total_errors: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def error(self, code: str, n: int = 1) -> None:
        self.errors[code] += n

    def take(self) -> dict[str, Any]:
        """The interval's numbers, and reset them."""
        self.totals.update(self.counters)
        self.total_errors.update(self.errors)
        out = {
            "counters": dict(self.counters),
            "errors": dict(self.errors),
            "ack": self.ack.tobytes(),
            "e2e": self.e2e.tobytes(),
            "other_ack": self.other_ack.tobytes(),
            "sent_by_second": dict(self.sent_by_second),
            "max_lag_ms": self.max_lag_ms,
        }
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

    def final(self, world: World) -> dict[str, Any]:
        return {}


class DirectMessages(Activity):
    """``message:send`` to the pair's other side; tracks each id to its ack and delivery."""

    paced = True

    def __init__(self, world: World) -> None:
        self.world = world
        # id -> [intended_ns, pair, acked_ns, deliveries]
        self.records: dict[str, list[Any]] = {}
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.delivered_unique = 0
        self.duplicated = 0
        self.corrupted = 0
        self.unexpected = 0
        self.hooks_before_send: list[Callable[[Pair, int], None]] = []
        self.hooks_delivered: list[Callable[[User, str], None]] = []
        self.ack_timeout_ns = 30 * NS

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"message:new": self.on_message}

    def send(self, pair: Pair, intended_ns: int) -> None:
        world = self.world
        sock = pair.sender.sock
        if sock is None or not sock.connected:
            world.stats.error("message:send:not_connected")
            return
        for hook in self.hooks_before_send:
            hook(pair, intended_ns)
        message_id = str(uuid.uuid4())
        assert pair.seal_channel is not None
        ciphertext, nonce = pair.seal_channel.seal(
            message_id, intended_ns, plaintext_size(world.rng)
        )
        record = [intended_ns, pair, 0, 0]
        self.records[message_id] = record
        body = {
            "id": message_id,
            "to": pair.recipient.user_id,
            "ciphertext": ciphertext,
            "nonce": nonce,
        }
        if not sock.emit("message:send", body, lambda ack: self.on_ack(message_id, ack)):
            del self.records[message_id]
            world.stats.error("message:send:write_failed")
            return
        stats = world.stats
        stats.count("sent")
        stats.sent_by_second[int(world.rel_s(intended_ns))] += 1

    def fire(self, world: World, intended_ns: int) -> None:
        self.send(world.pairs[world.rng.randrange(len(world.pairs))], intended_ns)

    def on_ack(self, message_id: str, ack: Any) -> None:
        world = self.world
        now = time.monotonic_ns()
        record = self.records.get(message_id)
        if record is None:
            return
        if not (isinstance(ack, dict) and ack.get("ok") is True):
            world.ack_error("message:send", ack)
            self.failed.add(message_id)
            del self.records[message_id]
            return
        if ack.get("id") != message_id:
            world.stats.error("message:send:ack_wrong_id")
        record[2] = now
        record[1].started = True
        stats = world.stats
        stats.count("acked")
        stats.ack.append(world.rel_s(record[0]))
        stats.ack.append((now - record[0]) / 1e6)
        if record[3]:
            del self.records[message_id]
            self.done.add(message_id)

    def on_message(self, user: User, data: Any) -> None:
        world = self.world
        now = time.monotonic_ns()
        if user.role != "recipient":
            world.stats.count("message:new:other")
            return
        message_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(message_id, str):
            self.unexpected += 1
            world.stats.count("unexpected")
            return
        record = self.records.get(message_id)
        if record is None:
            if message_id in self.done:
                self.duplicated += 1
                world.stats.count("duplicated")
            else:
                self.unexpected += 1
                world.stats.count("unexpected")
            return
        pair: Pair = record[1]
        record[3] += 1
        if record[3] > 1:
            self.duplicated += 1
            world.stats.count("duplicated")
            return
        try:
            assert pair.open_channel is not None
            sealed_id, sent_ns = pair.open_channel.open(data["ciphertext"], data["nonce"])
        except Exception:
            sealed_id, sent_ns = "", record[0]
        if sealed_id != message_id or data.get("from") != pair.sender.user_id:
            self.corrupted += 1
            world.stats.count("corrupted")
        self.delivered_unique += 1
        stats = world.stats
        stats.count("delivered")
        stats.e2e.append(world.rel_s(record[0]))
        stats.e2e.append((now - sent_ns) / 1e6)
        if record[2]:
            del self.records[message_id]
            self.done.add(message_id)
        for hook in self.hooks_delivered:
            hook(user, message_id)

    def outstanding(self) -> tuple[int, int]:
        """(sent and not acked, acked and not yet delivered to a connected recipient)."""
        unacked = undelivered = 0
        for _, pair, acked, deliveries in self.records.values():
            if not acked:
                if pair.sender.connected:
                    unacked += 1
            elif not deliveries and pair.recipient.connected:
                undelivered += 1
        return unacked, undelivered

    def overdue(self, now_ns: int, after_s: float = 5.0) -> int:
        """Messages older than ``after_s`` still not acked or not delivered."""
        limit = now_ns - int(after_s * NS)
        return sum(1 for r in self.records.values() if r[0] < limit)

    def busy(self) -> bool:
        unacked, undelivered = self.outstanding()
        return bool(unacked or undelivered)

    def final(self, world: World) -> dict[str, Any]:
        unacked = unacked_disconnected = lost = undeliverable = 0
        lost_samples: list[dict[str, Any]] = []
        lost_seconds: list[float] = []
        for message_id, (intended, pair, acked, deliveries) in self.records.items():
            if not acked:
                if (
                    pair.sender.first_loss_ns
                    and pair.sender.first_loss_ns <= intended + self.ack_timeout_ns
                ):
                    unacked_disconnected += 1
                else:
                    unacked += 1
                continue
            if deliveries:
                continue
            loss_at = pair.recipient.first_loss_ns
            if loss_at and loss_at <= acked + 10 * NS:
                undeliverable += 1
                continue
            lost += 1
            lost_seconds.append(world.rel_s(intended))
            if len(lost_samples) < 20:
                lost_samples.append(
                    {
                        "id": message_id,
                        "sentAtS": round(world.rel_s(intended), 3),
                        "ackedAfterMs": round((acked - intended) / 1e6, 1),
                        "from": pair.sender.user_id,
                        "to": pair.recipient.user_id,
                        "senderUrl": pair.sender.url,
                        "recipientUrl": pair.recipient.url,
                    }
                )
        return {
            "delivered": self.delivered_unique,
            "duplicated": self.duplicated,
            "corrupted": self.corrupted,
            "unexpected": self.unexpected,
            "ack_failed": len(self.failed),
            "unacked": unacked,
            "unacked_sender_disconnected": unacked_disconnected,
            "lost": lost,
            "undeliverable": undeliverable,
            "lost_samples": lost_samples,
            "lost_seconds": lost_seconds,
        }


class Receipts(Activity):
    """Recipients mark what they got as delivered soon after, and some of it read later."""

    def __init__(self, world: World, messages: DirectMessages) -> None:
        self.world = world
        self.pending = 0
        self.armed = 0
        messages.hooks_delivered.append(self.on_delivered)

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"message:receipt": self.on_receipt}

    def on_delivered(self, user: User, message_id: str) -> None:
        user.pending_delivered.append(message_id)
        if not user.flush_armed:
            user.flush_armed = True
            self.armed += 1
            low, high = self.world.mix.receipt_delay_s
            asyncio.get_running_loop().call_later(
                self.world.rng.uniform(low, high), self.flush, user
            )

    def flush(self, user: User) -> None:
        self.armed -= 1
        user.flush_armed = False
        ids, user.pending_delivered = user.pending_delivered[:500], user.pending_delivered[500:]
        if user.pending_delivered:
            user.flush_armed = True
            self.armed += 1
            asyncio.get_running_loop().call_later(0.1, self.flush, user)
        if not ids or self.world.closing:
            return
        self.mark(user, "message:delivered", ids)
        world = self.world
        if world.rng.random() < world.mix.read_ratio:
            low, high = world.mix.read_delay_s
            self.armed += 1
            asyncio.get_running_loop().call_later(
                world.rng.uniform(low, high), self.read_later, user, ids
            )

    def read_later(self, user: User, ids: list[str]) -> None:
        self.armed -= 1
        if not self.world.closing:
            self.mark(user, "message:read", ids)

    def mark(self, user: User, event: str, ids: list[str]) -> None:
        world = self.world
        sock = user.sock
        if sock is None or not sock.connected:
            return
        sent_ns = time.monotonic_ns()

        def on_ack(ack: Any) -> None:
            self.pending -= 1
            if isinstance(ack, dict) and ack.get("ok") is True:
                world.stats.count(f"{event}:ok")
                world.stats.other_ack.append((time.monotonic_ns() - sent_ns) / 1e6)
            else:
                world.ack_error(event, ack)

        if sock.emit(event, {"ids": ids}, on_ack):
            self.pending += 1
            world.stats.count(f"{event}:sent")

    def on_receipt(self, user: User, data: Any) -> None:
        status = data.get("status") if isinstance(data, dict) else None
        ids = data.get("ids") if isinstance(data, dict) else None
        self.world.stats.count(f"receipt:{status}")
        if isinstance(ids, list):
            self.world.stats.count(f"receipt:{status}:ids", len(ids))

    def busy(self) -> bool:
        return self.pending > 0 or self.armed > 0


class Typing(Activity):
    """``typing start`` before some messages of conversations that already exist."""

    def __init__(self, world: World, messages: DirectMessages) -> None:
        self.world = world
        self.pending = 0
        messages.hooks_before_send.append(self.before_send)

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"typing": self.on_typing}

    def before_send(self, pair: Pair, intended_ns: int) -> None:
        world = self.world
        if not pair.started or world.rng.random() >= world.mix.typing_ratio:
            return
        sock = pair.sender.sock
        assert sock is not None
        sent_ns = time.monotonic_ns()

        def on_ack(ack: Any) -> None:
            self.pending -= 1
            if isinstance(ack, dict) and ack.get("ok") is True:
                world.stats.count("typing:relayed" if ack.get("relayed") else "typing:throttled")
                world.stats.other_ack.append((time.monotonic_ns() - sent_ns) / 1e6)
            else:
                world.ack_error("typing", ack)

        if sock.emit("typing", {"to": pair.recipient.user_id, "state": "start"}, on_ack):
            self.pending += 1
            world.stats.count("typing:sent")

    def on_typing(self, user: User, data: Any) -> None:
        self.world.stats.count("typing:received")

    def busy(self) -> bool:
        return self.pending > 0


class PresenceChurn(Activity):
    """Churners drop their socket and come back; watchers subscribed to them see it."""

    def __init__(self, world: World, messages: DirectMessages) -> None:
        self.world = world
        self.messages = messages
        self.task: asyncio.Task[None] | None = None
        self.reconnecting: set[asyncio.Task[None]] = set()

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"presence": self.on_presence}

    async def setup(self, world: World) -> None:
        """Each churner gets a first message from its watchers (presence is visible only
        within a conversation), then the watchers subscribe."""
        if not world.churners or not world.pairs:
            return
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[Any]] = []
        by_watcher: dict[int, list[User]] = {}
        count = min(world.mix.watchers_per_churner, len(world.pairs))
        for churner in world.churners:
            for pair in world.rng.sample(world.pairs, count):
                watcher = pair.sender
                channel = Channel(watcher.keys, churner.keys.public_b64)
                message_id = str(uuid.uuid4())
                ciphertext, nonce = channel.seal(message_id, time.monotonic_ns(), 80)
                future: asyncio.Future[Any] = loop.create_future()
                assert watcher.sock is not None
                watcher.sock.emit(
                    "message:send",
                    {
                        "id": message_id,
                        "to": churner.user_id,
                        "ciphertext": ciphertext,
                        "nonce": nonce,
                    },
                    _resolver(future),
                )
                waiting.append(future)
                by_watcher.setdefault(watcher.index, []).append(churner)
                watcher.watching.append(churner.user_id)
        for ack in await asyncio.wait_for(asyncio.gather(*waiting), 60):
            if not (isinstance(ack, dict) and ack.get("ok")):
                world.ack_error("setup:message:send", ack)
        subscribed: list[asyncio.Future[Any]] = []
        users = {u.index: u for u in world.users}
        for index, churners in by_watcher.items():
            watcher = users[index]
            future = loop.create_future()
            assert watcher.sock is not None
            watcher.sock.emit(
                "presence:subscribe",
                {"users": sorted({c.user_id for c in churners})},
                _resolver(future),
            )
            subscribed.append(future)
        for ack in await asyncio.wait_for(asyncio.gather(*subscribed), 60):
            if not (isinstance(ack, dict) and ack.get("ok")):
                world.ack_error("presence:subscribe", ack)
            else:
                world.stats.count("presence:subscribed")

    def start(self, world: World) -> None:
        if world.churners and world.reconnect is not None:
            self.task = asyncio.get_running_loop().create_task(self.run(world))

    async def run(self, world: World) -> None:
        mix = world.mix
        per_second = len(world.churners) / mix.churn_cycle_s
        budget = 0.0
        while world.sending:
            await asyncio.sleep(1.0)
            budget += per_second
            while budget >= 1 and world.sending:
                budget -= 1
                up = [c for c in world.churners if c.connected]
                if not up:
                    break
                churner = world.rng.choice(up)
                task = asyncio.get_running_loop().create_task(self.cycle(world, churner))
                self.reconnecting.add(task)
                task.add_done_callback(self.reconnecting.discard)

    async def cycle(self, world: World, churner: User) -> None:
        sock = churner.sock
        churner.sock = None
        if sock is not None:
            await sock.close()
        world.stats.count("churn:down")
        await asyncio.sleep(world.rng.uniform(*world.mix.churn_down_s))
        if world.closing or world.reconnect is None:
            return
        try:
            await world.reconnect(churner)
            world.stats.count("churn:up")
        except Exception as exc:
            world.stats.error(f"churn:connect:{type(exc).__name__}")

    def on_presence(self, user: User, data: Any) -> None:
        status = data.get("status") if isinstance(data, dict) else None
        self.world.stats.count(f"presence:{status}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for task in list(self.reconnecting):
            try:
                await asyncio.wait_for(task, 10)
            except BaseException:
                task.cancel()


def _resolver(future: asyncio.Future[Any]) -> Callable[[Any], None]:
    def resolve(ack: Any) -> None:
        if not future.done():
            future.set_result(ack)

    return resolve


def build_activities(world: World) -> DirectMessages:
    """The activities of ``world.mix``; returns the paced direct messages."""
    messages = DirectMessages(world)
    world.add(messages)
    mix = world.mix
    if mix.receipts:
        world.add(Receipts(world, messages))
    if mix.typing_ratio > 0:
        world.add(Typing(world, messages))
    if world.churners:
        world.add(PresenceChurn(world, messages))
    return messages
