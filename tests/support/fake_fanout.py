"""A ``Fanout`` that collects what would have been sent, for unit tests of the services."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from hub.fanout import ConnectionsEnded, Delivery, SessionsEnded, UserPresence


@dataclass
class MemoryFanout:
    delivered: list[Delivery] = field(default_factory=list)
    announced: list[UserPresence] = field(default_factory=list)
    revoked: list[dict[str, list[str]]] = field(default_factory=list)
    ended: list[SessionsEnded] = field(default_factory=list)
    ended_connections: list[dict[str, list[str]]] = field(default_factory=list)

    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        self.delivered.extend(deliveries)

    async def announce_presence(self, presence: UserPresence) -> None:
        self.announced.append(presence)

    async def revoke_presence(self, revoked: Mapping[str, Collection[str]]) -> None:
        self.revoked.append({viewer: sorted(users) for viewer, users in revoked.items()})

    async def end_sessions(self, ended: SessionsEnded) -> None:
        self.ended.append(ended)

    async def end_connections(
        self, conn_ids_by_node: Mapping[str, Sequence[str]], how: ConnectionsEnded
    ) -> None:
        self.ended_connections.append({n: list(c) for n, c in conn_ids_by_node.items()})
