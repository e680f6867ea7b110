"""What the presence service needs from storage and from the transport, as small Protocols.

``storage/redis/presence.py`` (live devices), ``storage/sql/bands.py`` (who shares a band
or a conversation) and ``storage/sql/users.py`` (last seen) satisfy the storage ports
without importing hub/; the transport's connection (``handlers/registry.py``) satisfies
``PresenceWatch``. Unit tests give the service in-memory ones.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal, Protocol

from storage.redis.presence import Connected, LiveConnection, StoredPresence


class LiveDevices(Protocol):
    """Every live connection of every node, each with an expiry its node keeps pushing back."""

    async def connect(self, conn: LiveConnection, *, now_ms: int, max_devices: int) -> Connected:
        """Record the connection, unless the user already has ``max_devices`` others
        (``too_many_devices``); says whether the user just came online, and which earlier
        connections of the same device it replaced."""

    async def disconnect(self, conn: LiveConnection, *, now_ms: int) -> bool:
        """True when that was the user's last live connection anywhere."""

    async def refresh(self, conns: Sequence[LiveConnection], *, now_ms: int) -> list[str]:
        """Push back these connections' expiry; the users this brought back online."""

    async def sweep(self, *, now_ms: int) -> list[tuple[str, int]]:
        """Drop expired connections (of any node); ``(user, last_seen_ms)`` for each user
        who has none left."""

    async def presence_of(self, user_ids: Collection[str], *, now_ms: int) -> list[StoredPresence]:
        """Online or not, and the last-seen time Redis still has, for each user in order."""


class SharedSpaces(Protocol):
    async def visible_among(self, user_id: str, others: list[str]) -> set[str]:
        """Those of ``others`` who share a band or a conversation with ``user_id``."""


class LastSeenStore(Protocol):
    async def set_last_seen(self, user_id: str, last_seen_ms: int) -> None: ...

    async def last_seen_of(self, user_ids: list[str]) -> dict[str, int | None]:
        """The durable last-seen time of each existing user among ``user_ids``."""


WatchOutcome = Literal["watching", "revoked_meanwhile", "too_many"]


class PresenceWatch(Protocol):
    """The presence subscriptions of one connection, kept by the transport that pushes the
    changes to it."""

    @property
    def revocations(self) -> int:
        """How many revocations have reached this connection so far."""

    def watch(
        self, user_ids: Collection[str], *, unless_revoked_since: int, at_most: int
    ) -> WatchOutcome:
        """Start watching ``user_ids``, unless a revocation reached this connection after
        ``revocations`` read ``unless_revoked_since`` (``revoked_meanwhile``), or the
        connection would then watch more than ``at_most`` users (``too_many``)."""
