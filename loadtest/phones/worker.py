"""One driver process: an asyncio loop (uvloop) holding many phones' sockets.

Talks to the parent over a ``multiprocessing`` pipe with the messages of ``pipe.py``: it
registers, says ``Registered``, waits for ``Connect``, connects, says ``Ready``, waits for
``Start``, sends a ``Tick`` a second until the drain is over, then its ``Final``, and exits on
``Close``. A ``Halt`` stops the schedule early (a failed step).

Its pairs are whole (both sides in this process), so loss, duplicates and latency are settled
here, and only numbers cross the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import time
import traceback
import uuid
from multiprocessing.connection import Connection

import aiohttp

from loadtest.crypto import Channel
from loadtest.phones.accounts import Registrar
from loadtest.phones.chat import build_activities
from loadtest.phones.direct import DirectMessages
from loadtest.phones.pacing import drain, send_open_loop
from loadtest.phones.recovery import SoakMessages, build_soak
from loadtest.phones.sockets import Sockets
from loadtest.phones.world import NS, Pair, User, World
from loadtest.pipe import (
    Close,
    Connect,
    Failed,
    Final,
    Halt,
    ParentMessage,
    PhaseProgress,
    Ready,
    Registered,
    Start,
    Tick,
    WorkerMessage,
)
from loadtest.plan import WorkerPlan


def raise_fd_limit() -> int:
    """One descriptor per socket: as many as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (1_048_576, 262_144, 65_536, hard):
        if wanted <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
            return wanted
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(plan: WorkerPlan, conn: Connection) -> None:
    """Process entry point."""
    raise_fd_limit()
    import uvloop

    try:
        uvloop.run(Worker(plan, conn).run())
    except Exception:  # anything: the parent must hear why, and fails the run on it
        with contextlib.suppress(OSError, ValueError):  # the parent may be gone already
            conn.send(Failed(traceback.format_exc()))
    finally:
        conn.close()


class Worker:
    """One process's phones, from registering to the final tally, driven by the parent."""

    def __init__(self, plan: WorkerPlan, conn: Connection) -> None:
        self.plan = plan
        self.conn = conn
        self.world = World(plan.mix, plan.seed * 1000 + plan.index)
        self.commands: asyncio.Queue[ParentMessage] = asyncio.Queue()
        self.halted = asyncio.Event()
        self.messages: DirectMessages | SoakMessages | None = None
        self.pair_users: list[tuple[int, User, User]] = []
        self._last_progress = 0.0

    # -- pipe ---------------------------------------------------------------------------

    def send(self, message: WorkerMessage) -> None:
        self.conn.send(message)

    def progress(self, phase: str, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.5:
            self._last_progress = now
            self.send(PhaseProgress(phase, done, total))

    def _readable(self) -> None:
        message: ParentMessage
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            message = Close()
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        if isinstance(message, Halt):
            self.halted.set()
        self.commands.put_nowait(message)

    async def expect(self, *kinds: type[ParentMessage]) -> ParentMessage:
        """The next command of one of ``kinds``; a ``Close`` before it ends the process."""
        while True:
            message = await self.commands.get()
            if isinstance(message, kinds):
                return message
            if isinstance(message, Close):
                raise SystemExit(0)

    # -- life ---------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._readable)
        # uvloop made the pipe non-blocking: a send larger than the socket buffer (the push
        # mix's final tally) would fail half-written. Commands are read only when readable.
        os.set_blocking(self.conn.fileno(), True)
        connector = aiohttp.TCPConnector(limit=0, force_close=False, enable_cleanup_closed=True)
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=20)
        )
        sockets = Sockets(self.plan, self.world, session, self.progress)
        try:
            await self.prepare(sockets)
            start = await self.expect(Start)
            assert isinstance(start, Start)
            await self.drive(start)
            await self.expect(Close)
        finally:
            self.world.closing = True
            await sockets.close_all()
            await session.close()
            with contextlib.suppress(OSError, ValueError):  # the pipe closed first
                loop.remove_reader(self.conn.fileno())

    async def prepare(self, sockets: Sockets) -> None:
        """Users, accounts, sockets and activities, up to "ready"; the clock has not started."""
        self.build_users()
        if self.plan.needs_accounts:
            await Registrar(self.plan, self.world, self.progress).register_all()
        else:
            for user in self.world.users:
                user.user_id = user.user_id or str(uuid.uuid4())
        self.build_pairs()
        if self.plan.needs_accounts:
            await Registrar(self.plan, self.world, self.progress).introduce(self.world.pairs)
        self.send(Registered(users=len(self.world.users)))
        await self.expect(Connect)
        await sockets.connect_all()
        if self.plan.soak is not None:
            self.messages = build_soak(
                self.world, self.plan.soak, self.plan.rest_urls, sockets.dial
            )
        else:
            self.messages = build_activities(self.world)
        self.messages.ack_timeout_ns = int(self.plan.ack_timeout_s * NS)
        for activity in self.world.activities:
            await activity.setup(self.world)
        gc.collect()
        gc.freeze()  # the long-lived sockets and users: keep them out of every collection
        self.send(
            Ready(connected=self.world.connected_count(), errors=dict(self.world.stats.errors))
        )

    def build_users(self) -> None:
        plan, world = self.plan, self.world
        index = 0

        def new(role: str, url: str) -> User:
            nonlocal index
            user = User(index=index, role=role, url=url)
            user.device = f"lt-{plan.index}-{index}"
            index += 1
            world.users.append(user)
            return user

        for pair in plan.pairs:
            recipient = new("recipient", pair.recipient_url)
            recipient.offline = plan.mix.offline(pair.index)
            self.pair_users.append((pair.index, new("sender", pair.sender_url), recipient))
        for url in plan.churner_urls:
            world.churners.append(new("churner", url))
        for url in plan.idle_urls:
            new("idle", url)

    def build_pairs(self) -> None:
        for index, sender, recipient in self.pair_users:
            pair = Pair(index, sender, recipient)
            pair.seal_channel = Channel(sender.keys, recipient.keys.public_b64)
            pair.open_channel = Channel(recipient.keys, sender.keys.public_b64)
            self.world.pairs.append(pair)

    # -- the run ------------------------------------------------------------------------

    async def drive(self, start: Start) -> None:
        world = self.world
        assert self.messages is not None
        start_ns = world.start_ns = start.start_ns
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / NS))
        world.sending = True
        for activity in world.activities:
            activity.start(world)
        ticker = asyncio.get_running_loop().create_task(self.tick_forever(start_ns))
        try:
            await send_open_loop(
                world, start_ns, start.segments, start.duration_s, self.plan.rate_share, self.halted
            )
            world.sending = False
            for activity in world.activities:
                await activity.stop()
            await drain(world, self.plan.drain_timeout_s)
            for activity in world.activities:
                await activity.settle(world)
        finally:
            world.sending = False
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self.send_tick(-1)
        self.send(Final(connected=world.connected_count(), tally=self.messages.tally(world)))

    async def tick_forever(self, start_ns: int) -> None:
        """One tick a second, on the shared clock, until cancelled after the drain."""
        index = 0
        while True:
            index += 1
            due = start_ns + index * NS
            await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / NS))
            self.send_tick(index)

    def send_tick(self, index: int) -> None:
        world = self.world
        assert self.messages is not None
        interval = world.stats.take()
        now = time.monotonic_ns()
        gauges: dict[str, int] = {}
        for activity in world.activities:
            gauges.update(activity.gauges(world))
        self.send(
            Tick(
                index=index,
                interval=interval,
                connections=world.connected_count(),
                overdue=self.messages.overdue(now),
                in_flight=len(self.messages.records),
                write_buffer=max(
                    (u.sock.write_buffer() for u in world.users if u.sock is not None), default=0
                ),
                gauges=gauges,
            )
        )
