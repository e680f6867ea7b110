"""The rest of the chat mix, beside the direct messages: receipts, typing and presence churn.

* ``Receipts`` reacts to deliveries (``message:delivered`` soon, ``message:read`` for some).
* ``Typing`` sends ``typing {to, state: "start"}`` before some messages.
* ``PresenceChurn`` takes a few users off- and online while other users watch their presence.

They hook into ``DirectMessages`` rather than pacing themselves, so the mix follows the rate.
Adding band messages or calls: write an activity with ``events`` (incoming event → handler),
optionally ``paced = True`` and ``fire()`` (it then shares the rate by ``weight``), a
``setup()`` for what must exist first (bands, memberships), and ``counters`` for the report.
The scheduler, stats, ticks and report do not change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from loadtest.crypto import Channel
from loadtest.phones.direct import DirectMessages
from loadtest.phones.world import Activity, Pair, User, World


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
        await self.accept_watchers(world, by_watcher)
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

    async def accept_watchers(self, world: World, by_watcher: dict[int, list[User]]) -> None:
        """Each churner replies to its watchers' first messages: a reply accepts a message
        request, so the two become contacts and presence may flow."""
        loop = asyncio.get_running_loop()
        users = {u.index: u for u in world.users}
        waiting: list[asyncio.Future[Any]] = []
        for index, churners in by_watcher.items():
            watcher = users[index]
            for churner in churners:
                channel = Channel(churner.keys, watcher.keys.public_b64)
                message_id = str(uuid.uuid4())
                ciphertext, nonce = channel.seal(message_id, time.monotonic_ns(), 80)
                future: asyncio.Future[Any] = loop.create_future()
                assert churner.sock is not None
                body = {
                    "id": message_id,
                    "to": watcher.user_id,
                    "ciphertext": ciphertext,
                    "nonce": nonce,
                }
                churner.sock.emit("message:send", body, _resolver(future))
                waiting.append(future)
        for ack in await asyncio.wait_for(asyncio.gather(*waiting), 60):
            if not (isinstance(ack, dict) and ack.get("ok")):
                world.ack_error("setup:message:reply", ack)

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
