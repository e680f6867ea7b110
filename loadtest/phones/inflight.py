"""What a soak phone holds while nodes come and go: its messages in flight and its own state.

Shared by the soak's sender side (``outbox.py``), recipient side (``history.py``), redial
(``redial.py``) and the activity that ties them (``recovery.py``), so none of them reaches into
another's attributes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from loadtest.phones.world import Pair, User

RETRYABLE = frozenset({"unavailable", "rate_limited"})
LIVE, SYNC, FINAL = "live", "sync", "final"
SAMPLES = 20


class SocketLost(ConnectionError):
    """The socket dropped while a call on it waited for its ack."""


class Record:
    """One message from creation until it is both acked and seen by its recipient."""

    __slots__ = (
        "acked_ns",
        "body",
        "failed",
        "gen",
        "intended_ns",
        "pair",
        "retry_at_ns",
        "seen",
        "sent_ns",
        "writes",
    )

    def __init__(self, intended_ns: int, pair: Pair, body: dict[str, Any]) -> None:
        self.intended_ns = intended_ns
        self.pair = pair
        self.body: dict[str, Any] | None = body
        self.acked_ns = 0
        self.writes = 0
        self.gen = 0  # the connection generation it was last written on (0: never; -1: retry)
        self.sent_ns = 0
        self.retry_at_ns = 0
        self.seen = False
        self.failed = ""


@dataclass(eq=False)
class Phone:
    user: User
    gen: int = 0  # +1 on every connection
    recovering: bool = False
    dropped_ns: int = 0
    calls: set[asyncio.Future[Any]] = field(default_factory=set)
    # sender
    outbox: dict[str, Record] = field(default_factory=dict)
    # recipient: id -> seq of everything it holds; every seq <= top is held
    seen: dict[str, int] = field(default_factory=dict)
    top: int = 0
    above: set[int] = field(default_factory=set)
    syncing: bool = False
    gap_armed: bool = False
    final: str = ""  # "" (not done), "ok" or why it failed


async def call(phone: Phone, event: str, data: Any, timeout: float) -> Any:
    """Emit and wait for the ack; ``SocketLost`` if the socket drops first (``on_drop`` fails
    the phone's pending calls, so a sync never waits out its timeout on a dead socket)."""
    sock = phone.user.sock
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def resolve(ack: Any) -> None:
        if not future.done():
            future.set_result(ack)

    if sock is None or not sock.emit(event, data, resolve):
        raise SocketLost(event)
    phone.calls.add(future)
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        phone.calls.discard(future)


def error_code(ack: Any) -> str:
    if isinstance(ack, dict):
        error = ack.get("error")
        if isinstance(error, dict):
            return str(error.get("code", "unknown"))
    return "bad_ack"
