"""How a soak phone whose socket dropped gets a new one, as the app does: backoff, the other
nodes in turn (then its own), a bounded number of attempts per drop.

It also keeps what the report says about reconnecting: the time from each drop to the new
connection, and the refused attempts by code.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from loadtest.phones.inflight import Phone
from loadtest.phones.world import User, World
from loadtest.plan import SoakPlan
from loadtest.protocol import BaseSocket, ConnectRefused

Dial = Callable[[User, str, float], Awaitable[BaseSocket]]


class Redialer:
    """Reconnects one phone at a time; bounded by ``reconnect_attempts`` per drop."""

    def __init__(self, world: World, plan: SoakPlan, urls: list[str], dial: Dial) -> None:
        self.world = world
        self.plan = plan
        self.urls = urls
        self.dial = dial
        self.reconnect_times: list[tuple[float, float]] = []  # (drop at s, ms to reconnect)
        self.refusals: Counter[str] = Counter()
        self.gave_up = 0

    def candidates(self, user: User) -> list[str]:
        """The other nodes, in an order that spreads phones over them, then its own."""
        n = len(self.urls)
        current = self.urls.index(user.url) if user.url in self.urls else 0
        if n == 1:
            return [self.urls[0]]
        start = user.index % (n - 1)
        others = [self.urls[(current + 1 + (start + j) % (n - 1)) % n] for j in range(n - 1)]
        return [*others, self.urls[current]]

    async def reconnect(self, phone: Phone) -> bool:
        user, plan, stats = phone.user, self.plan, self.world.stats
        order = self.candidates(user)
        for attempt in range(plan.reconnect_attempts):
            base = min(plan.backoff_max_s, plan.backoff_s * 2**attempt)
            await asyncio.sleep(base * self.world.rng.uniform(0.5, 1.0))
            if self.world.closing:
                return False
            url = order[attempt % len(order)]
            try:
                sock = await self.dial(user, url, plan.connect_timeout_s)
            except ConnectRefused as exc:
                self.refusals[f"refused:{exc.code}"] += 1
                continue
            except Exception as exc:  # refused by the kernel, reset, timed out: next node
                self.refusals[f"error:{type(exc).__name__}"] += 1
                continue
            if self.world.closing:
                await sock.close()
                return False
            user.sock = sock
            user.url = url
            phone.gen += 1
            now = time.monotonic_ns()
            self.reconnect_times.append(
                (self.world.rel_s(phone.dropped_ns), (now - phone.dropped_ns) / 1e6)
            )
            stats.count("reconnects")
            return True
        stats.error("reconnect:gave_up")
        self.gave_up += 1
        return False
