"""Opening and closing a worker's sockets: the first connect of every phone, the redial the
soak's phones use, and the close at the end.

Every socket reports its events and its drop to the ``World``, which routes them to the
activities; what a phone authenticates with depends on the target (a token and a device for
the hub, a bare user id for the relays).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from loadtest.phones.world import Progress, User, World
from loadtest.plan import WorkerPlan
from loadtest.protocol import BaseSocket, ConnectRefused, make_socket


class Sockets:
    """Makes every socket of a worker, wired to its ``World``."""

    def __init__(
        self, plan: WorkerPlan, world: World, session: aiohttp.ClientSession, progress: Progress
    ) -> None:
        self.plan = plan
        self.world = world
        self.session = session
        self.progress = progress

    def auth_for(self, user: User) -> dict[str, Any]:
        if self.plan.needs_accounts:
            return {"token": user.token, "device": user.device}
        return {"userId": user.user_id}

    def new_socket(self, user: User) -> BaseSocket:
        sock = make_socket(self.plan.client_kind, self.session)
        sock.tag = user
        sock.on_event = self.world.on_event
        sock.on_disconnect = self.world.on_disconnect
        return sock

    async def open_socket(self, user: User) -> None:
        """Connect ``user`` to its own node, four attempts with backoff."""
        last: Exception | None = None
        for attempt in range(4):
            sock = self.new_socket(user)
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
        sock = self.new_socket(user)
        await sock.connect(url, self.auth_for(user), timeout)
        return sock

    async def connect_all(self) -> None:
        users = [u for u in self.world.users if not u.offline]
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
