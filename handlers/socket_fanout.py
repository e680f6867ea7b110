"""``Fanout`` over Socket.IO: devices on this node get events straight from their socket;
only what devices on other nodes need goes over the bus, to those nodes' own channels.

Frames for other nodes are batched: those queued in one event-loop turn leave as one
message per target node, all in one round trip. Presence changes and revocations go to
every node, this one included, and each pushes them to the subscribers it holds.

Delivery never raises: the message is already stored, and a device that misses an event
catches up with ``message:sync``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from handlers.engineio_internals import EngineSockets
from handlers.registry import ConnectionRegistry, ConnectionState
from hub.clock import Clock
from hub.fanout import (
    ConnectionsEnded,
    Delivery,
    NodeBus,
    NodeDirectory,
    NodeFrame,
    PresenceRevocation,
    SessionsEnded,
    UserPresence,
    decode_frames,
    encode_frames,
)
from hub.metrics import HubMetrics
from hub.presence.views import presence_view

log = logging.getLogger(__name__)


class SocketFanout:
    def __init__(
        self,
        *,
        sockets: EngineSockets,
        connections: ConnectionRegistry,
        directory: NodeDirectory,
        bus: NodeBus,
        clock: Clock,
        metrics: HubMetrics,
    ) -> None:
        self._sockets = sockets
        self._connections = connections
        self._directory = directory
        self._bus = bus
        self._clock = clock
        self._local = metrics.deliveries.labels(path="local")
        self._remote = metrics.deliveries.labels(path="remote")
        self._outbox: dict[str, list[NodeFrame]] = {}
        self._flush_scheduled = False
        # The loop keeps only weak references to tasks: hold each publish until it is done.
        self._publishing: set[asyncio.Task[None]] = set()

    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        try:
            where = await self._directory.nodes_of(
                {d.user_id for d in deliveries}, now_ms=self._clock()
            )
        except Exception:
            log.warning("device directory unavailable; delivering to this node only", exc_info=True)
            where = {}
        own = self._bus.node_id
        for delivery in deliveries:
            await self._deliver_here(delivery)
            for node in where.get(delivery.user_id, ()):
                if node != own:
                    self._send_to_node(node, delivery)
                    self._remote.inc()

    async def announce_presence(self, presence: UserPresence) -> None:
        await self._publish_to_all(presence)

    async def revoke_presence(self, revoked: Mapping[str, Collection[str]]) -> None:
        """Applied here at once (no Redis needed for this node's sockets), then on every node
        when the frame comes back; applying it twice is harmless."""
        frame = PresenceRevocation(
            {viewer: sorted(users) for viewer, users in revoked.items() if users}
        )
        if not frame.revoked:
            return
        self._apply_revocation(frame)
        await self._publish_to_all(frame)

    async def end_sessions(self, ended: SessionsEnded) -> None:
        """Applied here at once, then on every node when the frame comes back (a connection
        is ended once: the second time finds it ending or gone)."""
        await self._end_here(ended)
        await self._publish_to_all(ended)

    async def end_connections(
        self, conn_ids_by_node: Mapping[str, Sequence[str]], how: ConnectionsEnded
    ) -> None:
        """Those on this node at once; the others' in one frame to their node each."""
        own = self._bus.node_id
        for node_id, conn_ids in conn_ids_by_node.items():
            frame = ConnectionsEnded(list(conn_ids), how.event, how.reason)
            if node_id == own:
                await self._end_connections_here(frame)
            else:
                self._send_to_node(node_id, frame)

    async def _end_connections_here(self, frame: ConnectionsEnded) -> None:
        states = [self._connections.by_conn(c) for c in frame.conn_ids]
        await self._end_states([s for s in states if s is not None], frame.event, frame.reason)

    async def _end_here(self, ended: SessionsEnded) -> None:
        states = [
            state
            for session_id in ended.session_ids
            for state in self._connections.connections_of_session(session_id)
            if state.user_id == ended.user_id
        ]
        await self._end_states(states, ended.event, ended.reason)

    async def _end_states(self, states: Sequence[ConnectionState], event: str, reason: str) -> None:
        ending = [state for state in states if not state.ending]
        if not ending:
            return
        for state in ending:
            state.ending = True
        await self._send(ending, event, {"reason": reason})
        for state in ending:
            try:
                await self._sockets.disconnect(state.sid)
            except Exception:
                log.warning("could not disconnect an ended session's socket", exc_info=True)

    async def on_bus_message(self, message: bytes) -> None:
        """A bus message for this node, or for all of them: act on each of its frames."""
        for frame in decode_frames(message):
            if isinstance(frame, Delivery):
                await self._deliver_here(frame)
            elif isinstance(frame, UserPresence):
                watchers = self._connections.watchers_of(frame.user_id)
                if watchers:
                    await self._send(list(watchers), "presence", presence_view(frame))
            elif isinstance(frame, SessionsEnded):
                await self._end_here(frame)
            elif isinstance(frame, ConnectionsEnded):
                await self._end_connections_here(frame)
            else:
                self._apply_revocation(frame)

    async def _deliver_here(self, delivery: Delivery) -> None:
        skip = delivery.except_conn
        connections = [
            c for c in self._connections.connections_of(delivery.user_id) if c.conn_id != skip
        ]
        await self._send(connections, delivery.event, delivery.payload)

    async def _send(self, connections: Sequence[ConnectionState], event: str, payload: Any) -> None:
        """Encode the event once and queue it on each of these sockets."""
        if not connections:
            return
        try:
            encoded = self._sockets.encode_event(event, payload)
        except Exception:
            log.warning("could not encode %s", event, exc_info=True)
            return
        for connection in connections:
            if await self._sockets.send(connection.eio_sid, encoded):
                self._local.inc()

    def _apply_revocation(self, frame: PresenceRevocation) -> None:
        for viewer, users in frame.revoked.items():
            self._connections.revoke(viewer, users)

    async def _publish_to_all(
        self, frame: UserPresence | PresenceRevocation | SessionsEnded
    ) -> None:
        try:
            await self._bus.publish_to_all(encode_frames([frame]))
        except Exception:
            log.warning("could not announce %s to the other nodes", type(frame).__name__)

    def _send_to_node(self, node_id: str, frame: NodeFrame) -> None:
        """Queue a frame for another node; it leaves with this loop turn's batch."""
        self._outbox.setdefault(node_id, []).append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batches, self._outbox = self._outbox, {}
        task = asyncio.get_running_loop().create_task(self._publish_to_nodes(batches))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_to_nodes(self, batches: dict[str, list[NodeFrame]]) -> None:
        try:
            await self._bus.publish_to_nodes(
                {node: encode_frames(frames) for node, frames in batches.items()}
            )
        except Exception:
            log.warning("could not publish frame batches to %d other nodes", len(batches))
