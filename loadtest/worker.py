"""One driver process: an asyncio loop (uvloop) holding many phones' sockets.

Talks to the parent over a ``multiprocessing`` pipe:

    worker → parent: ("progress", phase, done, total) · ("registered", info) · ("ready", info)
                     · ("tick", index, stats) · ("final", totals) · ("failed", traceback)
    parent → worker: ("connect",) · ("start", start_ns, segments, duration_s) · ("halt",)
                     · ("close",)

Its pairs are whole (both sides in this process), so loss, duplicates and latency are settled
here, and only numbers cross the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from loadtest.crypto import Channel
from loadtest.plan import Segment, WorkerPlan
from loadtest.protocol import BaseSocket, ConnectRefused, make_socket
from loadtest.recovery import SoakMessages, build_soak
from loadtest.scenario import NS, DirectMessages, Pair, User, World, build_activities

PASSWORD = "load-test-password-1"


def raise_fd_limit() -> int:
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
    except Exception:
        with contextlib.suppress(Exception):
            conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


class Worker:
    def __init__(self, plan: WorkerPlan, conn: Connection) -> None:
        self.plan = plan
        self.conn = conn
        self.world = World(plan.mix, plan.seed * 1000 + plan.index)
        self.commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.halted = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.messages: DirectMessages | SoakMessages | None = None
        self._last_progress = 0.0

    # -- pipe ---------------------------------------------------------------------------

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    def progress(self, phase: str, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.5:
            self._last_progress = now
            self.send("progress", phase, done, total)

    def _readable(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            message = ("close",)
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        if message[0] == "halt":
            self.halted.set()
        self.commands.put_nowait(message)

    async def expect(self, *names: str) -> tuple[Any, ...]:
        while True:
            message = await self.commands.get()
            if message[0] in names:
                return message
            if message[0] == "close":
                raise SystemExit(0)

    # -- life ---------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._readable)
        connector = aiohttp.TCPConnector(limit=0, force_close=False, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=20)
        )
        try:
            self.build_users()
            if self.plan.needs_accounts:
                await self.register_all()
            else:
                for user in self.world.users:
                    user.user_id = user.user_id or _uuid()
            self.build_pairs()
            self.send("registered", {"users": len(self.world.users)})
            await self.expect("connect")
            await self.connect_all()
            if self.plan.soak is not None:
                self.messages = build_soak(
                    self.world, self.plan.soak, self.plan.rest_urls, self.dial
                )
            else:
                self.messages = build_activities(self.world)
            self.messages.ack_timeout_ns = int(self.plan.ack_timeout_s * NS)
            for activity in self.world.activities:
                await activity.setup(self.world)
            gc.collect()
            gc.freeze()  # the long-lived sockets and users: keep them out of every collection
            self.send(
                "ready",
                {
                    "connected": self.world.connected_count(),
                    "errors": dict(self.world.stats.errors),
                },
            )
            message = await self.expect("start", "close_now")
            if message[0] == "start":
                _, start_ns, segments, duration_s = message
                await self.drive(start_ns, segments, duration_s)
            await self.expect("close")
        finally:
            self.world.closing = True
            await self.close_all()
            await self.session.close()
            with contextlib.suppress(Exception):
                loop.remove_reader(self.conn.fileno())

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

        self._pair_users = []
        for pair in plan.pairs:
            self._pair_users.append(
                (pair.index, new("sender", pair.sender_url), new("recipient", pair.recipient_url))
            )
        for url in plan.churner_urls:
            world.churners.append(new("churner", url))
        for url in plan.idle_urls:
            new("idle", url)

    def build_pairs(self) -> None:
        for index, sender, recipient in self._pair_users:
            pair = Pair(index, sender, recipient)
            pair.seal_channel = Channel(sender.keys, recipient.keys.public_b64)
            pair.open_channel = Channel(recipient.keys, sender.keys.public_b64)
            self.world.pairs.append(pair)

    # -- accounts -----------------------------------------------------------------------

    async def register_all(self) -> None:
        plan = self.plan
        users = self.world.users
        done = 0
        limit = asyncio.Semaphore(plan.register_concurrency)
        connector = aiohttp.TCPConnector(limit=plan.register_concurrency)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as http:

            async def one(user: User) -> None:
                nonlocal done
                async with limit:
                    await self.register(http, user)
                done += 1
                self.progress("register", done, len(users))

            await asyncio.gather(*(one(u) for u in users))
        self.progress("register", done, len(users), force=True)

    async def register(self, http: aiohttp.ClientSession, user: User) -> None:
        plan = self.plan
        base = plan.rest_urls[user.index % len(plan.rest_urls)]
        name = f"lt-{plan.run_id}-{plan.index}-{user.index}"
        body = {"email": f"{name}@example.com", "password": PASSWORD, "name": name}
        data = await self._request(http, "POST", f"{base}/api/auth/register", body, None, 201)
        user.user_id = data["user"]["id"]
        user.token = data["accessToken"]
        if plan.with_keys:
            await self._request(
                http,
                "PUT",
                f"{base}/api/users/{user.user_id}/public-key",
                {"publicKey": user.keys.public_b64},
                user.token,
                200,
            )

    async def _request(
        self,
        http: aiohttp.ClientSession,
        method: str,
        url: str,
        body: Any,
        token: str | None,
        expected: int,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        last = ""
        for attempt in range(6):
            try:
                async with http.request(method, url, json=body, headers=headers) as response:
                    text = await response.text()
                    if response.status == expected:
                        return await response.json(content_type=None)
                    last = f"HTTP {response.status}: {text[:300]}"
                    self.world.stats.error(f"rest:{response.status}")
                    if response.status == 429:
                        raise RuntimeError(
                            f"{method} {url} was rate limited ({last}); start the hub with "
                            "API_RATE_LIMIT=off (see loadtest/README.md)"
                        )
                    if response.status < 500:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
                self.world.stats.error(f"rest:{type(exc).__name__}")
            await asyncio.sleep(0.2 * 2**attempt)
        raise RuntimeError(f"{method} {url} failed: {last}")

    # -- sockets ------------------------------------------------------------------------

    def auth_for(self, user: User) -> dict[str, Any]:
        if self.plan.needs_accounts:
            return {"token": user.token, "device": user.device}
        return {"userId": user.user_id}

    async def open_socket(self, user: User) -> None:
        assert self.session is not None
        last: Exception | None = None
        for attempt in range(4):
            sock = make_socket(self.plan.client_kind, self.session)
            sock.tag = user
            sock.on_event = self.world.on_event
            sock.on_disconnect = self.world.on_disconnect
            try:
                await sock.connect(user.url, self.auth_for(user))
                user.sock = sock
                return
            except ConnectRefused as exc:
                last = exc
                self.world.stats.error(f"connect:{exc.code}")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                last = exc
                self.world.stats.error(f"connect:{type(exc).__name__}")
            await asyncio.sleep(0.2 * 2**attempt)
        raise RuntimeError(f"could not connect user {user.index} to {user.url}: {last!r}")

    async def dial(self, user: User, url: str, timeout: float) -> BaseSocket:
        """One connection attempt of ``user`` to ``url``; the caller decides what next."""
        assert self.session is not None
        sock = make_socket(self.plan.client_kind, self.session)
        sock.tag = user
        sock.on_event = self.world.on_event
        sock.on_disconnect = self.world.on_disconnect
        await sock.connect(url, self.auth_for(user), timeout)
        return sock

    async def connect_all(self) -> None:
        users = self.world.users
        limit = asyncio.Semaphore(self.plan.connect_concurrency)
        done = 0
        failures = 0

        async def one(user: User) -> None:
            nonlocal done, failures
            async with limit:
                try:
                    await self.open_socket(user)
                except RuntimeError:
                    failures += 1
            done += 1
            self.progress("connect", done, len(users))

        await asyncio.gather(*(one(u) for u in users))
        self.progress("connect", done, len(users), force=True)
        self.world.reconnect = self.open_socket

    async def close_all(self) -> None:
        socks = [u.sock for u in self.world.users if u.sock is not None]
        for start in range(0, len(socks), 500):
            await asyncio.gather(
                *(s.close() for s in socks[start : start + 500]), return_exceptions=True
            )

    # -- the run ------------------------------------------------------------------------

    async def drive(self, start_ns: int, segments: list[Segment], duration_s: float) -> None:
        world = self.world
        assert self.messages is not None
        world.start_ns = start_ns
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / NS))
        world.sending = True
        for activity in world.activities:
            activity.start(world)
        ticker = asyncio.get_running_loop().create_task(self.tick_forever(start_ns))
        try:
            await self.schedule(start_ns, segments, duration_s)
            world.sending = False
            for activity in world.activities:
                await activity.stop()
            await self.drain()
            for activity in world.activities:
                await activity.settle(world)
        finally:
            world.sending = False
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self.send_tick(-1)
        final: dict[str, Any] = {
            "counters": dict(world.stats.totals),
            "errors": dict(world.stats.total_errors),
            "connected": world.connected_count(),
        }
        for activity in world.activities:
            final.update(activity.final(world))
        self.send("final", final)

    async def schedule(self, start_ns: int, segments: list[Segment], duration_s: float) -> None:
        """Open loop: message k of a segment is due at segment start + k / rate, and is sent
        then, acked or not. A late driver sends its backlog at once and shows as lag."""
        world = self.world
        paced = [a for a in world.activities if a.paced]
        weights = [a.weight for a in paced]
        single = paced[0] if len(paced) == 1 else None
        end_ns = start_ns + int(duration_s * NS)
        bounds = [start_ns + int(s.at_s * NS) for s in segments] + [end_ns]
        stats = world.stats
        rng = world.rng
        for number, segment in enumerate(segments):
            seg_start, seg_end = bounds[number], min(bounds[number + 1], end_ns)
            rate = segment.rate * self.plan.rate_share
            if rate <= 0 or seg_start >= seg_end:
                continue
            interval = NS / rate
            k = 0
            while True:
                if self.halted.is_set():
                    return
                due = seg_start + int(k * interval)
                if due >= seg_end:
                    break
                now = time.monotonic_ns()
                if due > now:
                    # the loop's timers have 1 ms resolution: a shorter sleep would spin
                    await asyncio.sleep(max(0.001, (due - now) / NS))
                    continue
                lag_ms = (now - due) / 1e6
                if lag_ms > stats.max_lag_ms:
                    stats.max_lag_ms = lag_ms
                # everything due by now, in order, without yielding
                while due <= now and due < seg_end:
                    activity = single or rng.choices(paced, weights)[0]
                    activity.fire(world, due)
                    k += 1
                    due = seg_start + int(k * interval)
                await asyncio.sleep(0)
        remaining = (end_ns - time.monotonic_ns()) / NS
        if remaining > 0 and not self.halted.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.halted.wait(), remaining)

    async def drain(self) -> None:
        """Wait for outstanding acks, deliveries and receipts, up to the drain timeout."""
        deadline = time.monotonic() + self.plan.drain_timeout_s
        while time.monotonic() < deadline:
            if not any(a.busy() for a in self.world.activities):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # a last look for late duplicates

    async def tick_forever(self, start_ns: int) -> None:
        index = 0
        while True:
            index += 1
            due = start_ns + index * NS
            await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / NS))
            self.send_tick(index)

    def send_tick(self, index: int) -> None:
        world = self.world
        assert self.messages is not None
        stats = world.stats.take()
        now = time.monotonic_ns()
        stats["connections"] = world.connected_count()
        stats["overdue"] = self.messages.overdue(now)
        stats["in_flight"] = len(self.messages.records)
        stats["write_buffer"] = max(
            (u.sock.write_buffer() for u in world.users if u.sock is not None), default=0
        )
        gauges: dict[str, int] = {}
        for activity in world.activities:
            gauges.update(activity.gauges(world))
        if gauges:
            stats["gauges"] = gauges
        self.send("tick", index, stats)


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())
