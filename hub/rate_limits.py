"""Limits that hold across every node (counted in Redis) and per connection (in memory)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from hub.errors import RateLimited


class RateWindows(Protocol):
    async def hit(self, scope: str, subject: str, *, window_ms: int) -> tuple[int, int]: ...

    async def clear(self, scope: str, subject: str) -> None: ...

    async def count(self, scope: str, subject: str) -> tuple[int, int]:
        """Hits in the current window and ms until it resets, without counting one."""


@dataclass(frozen=True, slots=True)
class WindowLimit:
    scope: str
    limit: int
    window_seconds: int


class SharedLimiter:
    """Fixed windows in Redis: the same budget whichever node a request lands on."""

    def __init__(self, windows: RateWindows) -> None:
        self._windows = windows

    async def check(self, rule: WindowLimit, subject: str, what: str) -> None:
        count, left_ms = await self._windows.hit(
            rule.scope, subject, window_ms=rule.window_seconds * 1000
        )
        if count > rule.limit:
            retry = max(1, math.ceil(left_ms / 1000))
            raise RateLimited(f"too many {what}; try again in {retry} s", retry_after_seconds=retry)

    async def refuse_if_reached(self, rule: WindowLimit, subject: str, what: str) -> None:
        """Refuse when ``subject`` already has ``rule.limit`` hits in the window, counting
        none (for limits that count failures: ``record`` after one)."""
        count, left_ms = await self._windows.count(rule.scope, subject)
        if count >= rule.limit:
            retry = max(1, math.ceil(left_ms / 1000))
            raise RateLimited(f"too many {what}; try again in {retry} s", retry_after_seconds=retry)

    async def record(self, rule: WindowLimit, subject: str) -> None:
        await self._windows.hit(rule.scope, subject, window_ms=rule.window_seconds * 1000)

    async def reset(self, rule: WindowLimit, subject: str) -> None:
        await self._windows.clear(rule.scope, subject)


class TokenBucket:
    """Per-connection event budget: ``rate`` events a second, bursts up to ``burst``."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now_s: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now_s

    def take(self, now_s: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now_s - self._stamp) * self._rate)
        self._stamp = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
