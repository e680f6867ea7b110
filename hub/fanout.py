"""What the services need from the transport, and the frames hub nodes exchange to do it.

Services call a ``Fanout``: deliver events to users' devices wherever they are connected,
announce presence changes, revoke presence subscriptions. The Socket.IO implementation
(``handlers/socket_fanout.py``) serves the devices held by its own node and sends the rest
to other nodes as frames over a ``NodeBus`` (``storage/redis/bus.py``, which carries bytes
and knows nothing of frames). Every frame kind is one dataclass below, and ``encode_frames``
and ``decode_frames`` are the only code that knows how one looks on the wire.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

PresenceStatus = Literal["online", "offline"]


@dataclass(slots=True)
class Delivery:
    """One event for every connected device of one user, except the connection that caused it.

    Also the frame that carries it to another node holding devices of that user. Not frozen:
    one is built per recipient of every message, on the sending node and again on the
    receiving one, and a frozen dataclass costs about four times as much to build.
    """

    user_id: str
    event: str
    payload: dict[str, Any]
    except_conn: str | None = None


@dataclass(frozen=True, slots=True)
class UserPresence:
    """A user's presence: the item of a ``presence:subscribe`` answer, and the frame that
    announces a change to every node (each pushes it to the subscribers it holds)."""

    user_id: str
    status: PresenceStatus
    last_seen: int | None


@dataclass(frozen=True, slots=True)
class PresenceRevocation:
    """The frame telling every node that each viewer (key) may no longer see these users."""

    revoked: Mapping[str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """The frame telling every node that these sessions of one user have ended: each node
    sends ``event`` (``{reason}``) to the sockets of them it holds, then disconnects them."""

    user_id: str
    session_ids: Sequence[str]
    event: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionsEnded:
    """The frame telling one node to send ``event`` (``{reason}``) to these connections it
    holds (by conn id), then disconnect them: an earlier socket of a device that connected
    again."""

    conn_ids: Sequence[str]
    event: str
    reason: str


NodeFrame = Delivery | UserPresence | PresenceRevocation | SessionsEnded | ConnectionsEnded

# Each frame is a JSON array led by its kind: positional fields keep the hot path (one
# delivery frame per remote recipient) as cheap as a bare list, and the kind lets a node
# skip a frame a newer node sends.
_DELIVERY = "d"
_PRESENCE = "p"
_REVOCATION = "r"
_SESSIONS_ENDED = "s"
_CONNECTIONS_ENDED = "c"


def encode_frames(frames: Iterable[NodeFrame]) -> bytes:
    """One bus message holding ``frames`` in order."""
    wire: list[tuple[Any, ...]] = []
    for frame in frames:
        if isinstance(frame, Delivery):
            wire.append((_DELIVERY, frame.user_id, frame.event, frame.payload, frame.except_conn))
        elif isinstance(frame, UserPresence):
            wire.append((_PRESENCE, frame.user_id, frame.status, frame.last_seen))
        elif isinstance(frame, SessionsEnded):
            wire.append(
                (
                    _SESSIONS_ENDED,
                    frame.user_id,
                    list(frame.session_ids),
                    frame.event,
                    frame.reason,
                )
            )
        elif isinstance(frame, ConnectionsEnded):
            wire.append((_CONNECTIONS_ENDED, list(frame.conn_ids), frame.event, frame.reason))
        else:
            wire.append((_REVOCATION, frame.revoked))
    return orjson.dumps(wire)


def decode_frames(message: bytes) -> list[NodeFrame]:
    """The frames of one bus message; kinds this node does not know are left out.

    Fields are not re-validated: frames come from our own nodes, through our own Redis.
    """
    frames: list[NodeFrame] = []
    for wire in orjson.loads(message):
        kind = wire[0]
        if kind == _DELIVERY:
            frames.append(Delivery(wire[1], wire[2], wire[3], wire[4]))
        elif kind == _PRESENCE:
            frames.append(UserPresence(wire[1], wire[2], wire[3]))
        elif kind == _REVOCATION:
            frames.append(PresenceRevocation(wire[1]))
        elif kind == _SESSIONS_ENDED:
            frames.append(SessionsEnded(wire[1], wire[2], wire[3], wire[4]))
        elif kind == _CONNECTIONS_ENDED:
            frames.append(ConnectionsEnded(wire[1], wire[2], wire[3]))
    return frames


class Fanout(Protocol):
    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        """Send each delivery to its user's devices on every node; never raises for a
        user with no device connected (they catch up with ``message:sync``)."""

    async def announce_presence(self, presence: UserPresence) -> None:
        """Tell every node, so each can push it to the subscribers it holds."""

    async def revoke_presence(self, revoked: Mapping[str, Collection[str]]) -> None:
        """Tell every node that each viewer (key) may no longer see these users (value): the
        viewer's connections, wherever they are, stop getting their presence changes."""

    async def end_sessions(self, ended: SessionsEnded) -> None:
        """Every node tells the sockets of these sessions it holds (``ended.event``) and
        disconnects them; never raises (the revocation is already recorded)."""

    async def end_connections(
        self, conn_ids_by_node: Mapping[str, Sequence[str]], how: ConnectionsEnded
    ) -> None:
        """Each node (key) sends ``how.event`` to those of its connections (value) and
        disconnects them (``how.conn_ids`` is ignored); never raises."""


class NodeDirectory(Protocol):
    async def nodes_of(self, user_ids: Collection[str], *, now_ms: int) -> dict[str, set[str]]:
        """The nodes holding a live connection of each user."""


class NodeBus(Protocol):
    """Carries encoded frames between hub nodes."""

    @property
    def node_id(self) -> str: ...

    async def publish_to_nodes(self, messages: Mapping[str, bytes]) -> None:
        """One message to each node (key), in one round trip; raises when unreachable."""

    async def publish_to_all(self, message: bytes) -> None:
        """One message to every node, this one included; raises when unreachable."""
