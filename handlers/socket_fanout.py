"""``Fanout`` over Socket.IO: devices on this node get events straight from their socket;
only what devices on other nodes need goes through Redis, to those nodes' own channels.

Delivery never raises: the message is already stored, and a device that misses an event
catches up with ``message:sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from handlers.registry import ConnectionRegistry
from hub.clock import Clock
from hub.fanout import Delivery, NodeBus, NodeDirectory, PresenceChange
from hub.metrics import HubMetrics

log = logging.getLogger(__name__)


class SocketFanout:
    def __init__(
        self,
        *,
        sio: Any,
        connections: ConnectionRegistry,
        directory: NodeDirectory,
        bus: NodeBus,
        clock: Clock,
        metrics: HubMetrics,
    ) -> None:
        self._sio = sio
        self._connections = connections
        self._directory = directory
        self._bus = bus
        self._clock = clock
        self._local = metrics.deliveries.labels(path="local")
        self._remote = metrics.deliveries.labels(path="remote")

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
            await self._emit_local(
                delivery.user_id, delivery.event, delivery.payload, delivery.except_conn
            )
            for node in where.get(delivery.user_id, ()):
                if node != own:
                    self._bus.send_to_node(
                        node,
                        [delivery.user_id, delivery.event, delivery.payload, delivery.except_conn],
                    )
                    self._remote.inc()

    async def _emit_local(
        self, user_id: str, event: str, payload: dict[str, Any], except_conn: str | None
    ) -> None:
        sids = self._connections.sids_of_user(user_id)
        if not sids:
            return
        skip = self._connections.sid_of_conn(except_conn)
        await self._send_to_sids([sid for sid in sids if sid != skip], event, payload)

    async def _send_to_sids(self, sids: list[str], event: str, payload: Any) -> None:
        """Encode the event once and queue it on each local Engine.IO socket.

        python-socketio's ``emit`` creates a task per recipient and waits for them all, so
        every emit costs event-loop turns; queueing directly costs none, which is what
        keeps delivery latency flat when thousands of events a second go out.
        """
        if not sids:
            return
        try:
            encoded = self._sio.packet_class(
                sio_packet.EVENT, namespace="/", data=[event, payload]
            ).encode()
            frame = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        except Exception:
            log.warning("could not encode %s", event, exc_info=True)
            return
        sockets = self._sio.eio.sockets
        for sid in sids:
            state = self._connections.by_sid(sid)
            socket = sockets.get(state.eio_sid) if state is not None else None
            if socket is None or socket.closed:
                continue
            try:
                await socket.send(frame)
                self._local.inc()
            except Exception:
                log.debug("local send of %s failed (socket closing)", event, exc_info=True)

    async def announce_presence(self, change: PresenceChange) -> None:
        try:
            await self._bus.announce_presence(change.as_payload())
        except Exception:
            log.warning("could not announce a presence change", exc_info=True)

    async def revoke_presence(self, revoked: Mapping[str, Collection[str]]) -> None:
        """Applied here at once (no Redis needed for this node's sockets), then on every node
        when the frame comes back on the presence channel; applying it twice is harmless."""
        frame = {viewer: sorted(users) for viewer, users in revoked.items() if users}
        if not frame:
            return
        self._apply_revocation(frame)
        try:
            await self._bus.announce_presence({"revoke": frame})
        except Exception:
            log.warning("could not announce a presence revocation", exc_info=True)

    def _apply_revocation(self, revoked: dict[str, list[str]]) -> None:
        for viewer, users in revoked.items():
            self._connections.unwatch_for_user(viewer, users)

    async def on_node_frames(self, frames: list[Any]) -> None:
        """Frames another node published for devices held here."""
        for user_id, event, payload, except_conn in frames:
            await self._emit_local(user_id, event, payload, except_conn)

    async def on_presence(self, changes: list[Any]) -> None:
        """A presence change from any node: push it to the subscribers held here. A
        ``{"revoke": {viewer: [users]}}`` frame ends subscriptions that lost their right."""
        for change in changes:
            if "revoke" in change:
                self._apply_revocation(change["revoke"])
                continue
            watchers = self._connections.watchers_of(change["userId"])
            if watchers:
                await self._send_to_sids(list(watchers), "presence", change)
