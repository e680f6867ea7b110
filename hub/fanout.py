"""What the services need from the transport: deliver events to users' devices, wherever
they are connected, and announce presence changes. The Socket.IO implementation lives in
``handlers/socket_fanout.py``; tests may use ``MemoryFanout``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

PresenceStatus = Literal["online", "offline"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for every connected device of one user, except the connection that caused it."""

    user_id: str
    event: str
    payload: dict[str, Any]
    except_conn: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceChange:
    user_id: str
    status: PresenceStatus
    last_seen: int | None

    def as_payload(self) -> dict[str, Any]:
        return {"userId": self.user_id, "status": self.status, "lastSeen": self.last_seen}


class Fanout(Protocol):
    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        """Send each delivery to its user's devices on every node; never raises for a
        user with no device connected (they catch up with ``message:sync``)."""

    async def announce_presence(self, change: PresenceChange) -> None:
        """Tell every node, so each can push it to the subscribers it holds."""

    async def revoke_presence(self, revoked: Mapping[str, Collection[str]]) -> None:
        """Tell every node that each viewer (key) may no longer see these users (value): the
        viewer's connections, wherever they are, stop getting their presence changes."""


@dataclass
class MemoryFanout:
    """Collects what would have been sent: for unit tests of the services."""

    delivered: list[Delivery] = field(default_factory=list)
    announced: list[PresenceChange] = field(default_factory=list)
    revoked: list[dict[str, list[str]]] = field(default_factory=list)

    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        self.delivered.extend(deliveries)

    async def announce_presence(self, change: PresenceChange) -> None:
        self.announced.append(change)

    async def revoke_presence(self, revoked: Mapping[str, Collection[str]]) -> None:
        self.revoked.append({viewer: sorted(users) for viewer, users in revoked.items()})


class NodeDirectory(Protocol):
    async def nodes_of(self, user_ids: Collection[str], *, now_ms: int) -> dict[str, set[str]]:
        """The nodes holding a live connection of each user."""


class NodeBus(Protocol):
    @property
    def node_id(self) -> str: ...

    def send_to_node(self, node_id: str, frame: object) -> None:
        """Queue a frame for another node (batched, never blocks)."""

    async def announce_presence(self, change: object) -> None: ...
