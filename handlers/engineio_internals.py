"""Every use of python-engineio's and python-socketio's internals, and only here.

The hub reaches under the public API of those two libraries for four things the API does
not offer: queueing one encoded event on many sockets without a task per recipient,
websockets without per-message compression, dropping a transport without a disconnect
packet (so the client reconnects by itself), and reading client packets strictly. Each use
below says what it relies on. These were read from python-engineio 4.15 and python-socketio
5.18, which ``pyproject.toml`` pins to those minor versions; ``tests/test_engineio_internals.py``
fails when one of them is gone, so an upgrade is a deliberate act: bump the pins, read the
libraries' changes against the comments here, run that test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket
from socketio import packet as sio_packet

from hub.metrics import HubMetrics

log = logging.getLogger(__name__)

# What a client event that is not ``["name", ...args]`` becomes (see ``ClientPacket``); the
# NUL keeps it apart from any name a client could mean.
MALFORMED_EVENT = "\x00malformed"
# Names python-socketio would hand to the connect, disconnect or catch-all handler as if
# the server had called them.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "*", MALFORMED_EVENT})

# What a client may send; CONNECT_ERROR and unknown types are the server's or nobody's.
CLIENT_PACKET_TYPES = frozenset(
    {
        sio_packet.CONNECT,
        sio_packet.DISCONNECT,
        sio_packet.EVENT,
        sio_packet.ACK,
        sio_packet.BINARY_EVENT,
        sio_packet.BINARY_ACK,
    }
)


def _malformed_reason(data: Any) -> str | None:
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        return 'an event is ["name", payload]'
    if data[0] in RESERVED_EVENTS:
        return f"{data[0][:64]!r} is not an event a client may send"
    return None


class ClientPacket(sio_packet.Packet):  # type: ignore[misc]
    """Socket.IO packets as the hub reads them. A client event that is not
    ``["name", ...args]`` in JSON (broken or nested over orjson's 1,024 levels, no name, a
    reserved name such as ``disconnect``) still carries its ack id: it becomes
    ``[MALFORMED_EVENT, reason]``, which the dispatcher answers ``invalid_payload``, instead
    of being dropped unanswered (or unregistering the connection, for ``disconnect``).
    Any other packet that does not parse becomes the same (unanswered without an ack id), and
    a CONNECT whose auth does not parse is a connect without auth (refused as such): garbage
    from a client never reaches python-socketio as a traceback in the log.

    Relies on: ``AsyncServer(serializer=cls)`` decoding every client packet with
    ``cls(encoded_packet=...)``, ``Packet.decode`` returning the attachment count and raising
    ``ValueError`` for bad JSON after setting ``packet_type``, and the server reading only
    ``packet_type``, ``data``, ``namespace`` and ``id`` afterwards.
    """

    packet_type: int
    data: Any

    def decode(self, encoded_packet: str | bytes) -> int:
        try:
            attachments: int = super().decode(encoded_packet) or 0
        except ValueError:
            if self.packet_type == sio_packet.CONNECT:
                self.data = None
            else:
                self._malformed("the packet is not JSON, or nested too deeply")
            return 0
        if self.packet_type not in CLIENT_PACKET_TYPES:
            self._malformed("not a packet a client may send")
            return 0
        if self.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            reason = _malformed_reason(self.data)
            if reason is not None:
                self.data = [MALFORMED_EVENT, reason]
        return attachments

    def _malformed(self, reason: str) -> None:
        self.packet_type = sio_packet.EVENT
        self.data = [MALFORMED_EVENT, reason]


class UncompressedWebSocket(WebSocket):  # type: ignore[misc]
    """The websocket under Engine.IO, without per-message compression.

    Messages are NaCl ciphertext in base64, which deflate shrinks by only about a quarter
    while costing CPU on every frame, for every recipient. Clients that offer
    permessage-deflate (Node's ``ws``, browsers) simply don't get it; the protocol is
    unchanged.

    Relies on: python-engineio's aiohttp ``WebSocket(handler, server)`` being called with the
    WSGI-style ``environ`` holding ``aiohttp.request``, keeping the aiohttp response in
    ``self._sock`` (its ``send``, ``wait`` and ``close`` use it), and calling
    ``self.handler(self)``; this is its ``__call__`` with ``compress=False``.
    """

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def use_uncompressed_websockets(sio: Any) -> None:
    """Swap python-engineio's aiohttp websocket for ours on this server only.

    Relies on: ``AsyncServer.eio._async`` being the dict of the async driver's pieces, read
    by key (``"websocket"``) whenever a websocket opens."""
    sio.eio._async = {**sio.eio._async, "websocket": UncompressedWebSocket}


class EngineSockets:
    """This server's Engine.IO sockets, reached under python-socketio's public API."""

    def __init__(self, sio: Any) -> None:
        self._sio = sio

    def eio_sid_of(self, sid: str) -> str:
        """The Engine.IO session of a Socket.IO one in the default namespace, "" if gone.

        Relies on: ``sio.manager.eio_sid_from_sid(sid, namespace)`` (undocumented)."""
        return self._sio.manager.eio_sid_from_sid(sid, "/") or ""

    def encode_event(self, event: str, payload: Any) -> Any:
        """The Engine.IO packet carrying ``event``: encoded once, sent to many sockets.

        Relies on: ``sio.packet_class`` (our ``ClientPacket``, with the server's JSON
        module) encoding an EVENT in the default namespace to one string (no binary
        attachments: payloads are JSON), and Engine.IO MESSAGE packets being shareable
        between sockets (each transport encodes the packet it is handed, unchanged)."""
        encoded = self._sio.packet_class(
            sio_packet.EVENT, namespace="/", data=[event, payload]
        ).encode()
        return eio_packet.Packet(eio_packet.MESSAGE, encoded)

    async def send(self, eio_sid: str, encoded_event: Any) -> bool:
        """Queue an encoded event on one socket; False when it is gone or closed.

        python-socketio's ``emit`` creates a task per recipient and waits for them all, so
        every emit costs event-loop turns; queueing directly costs none, which is what
        keeps delivery latency flat when thousands of events a second go out.

        Relies on: ``sio.eio.sockets`` (Engine.IO sid -> socket), ``socket.closed`` and
        ``await socket.send(packet)``, which checks the ping timeout and puts the packet
        on the socket's outgoing queue without waiting for the client."""
        socket = self._sio.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return False
        try:
            await socket.send(encoded_event)
        except Exception:
            log.debug("a local send failed (the socket is closing)", exc_info=True)
            return False
        return True

    def is_open(self, sid: str) -> bool:
        """Whether the client of this Socket.IO session is still there.

        Relies on: ``sio.eio.sockets`` and ``socket.closed`` (as ``send``)."""
        socket = self._sio.eio.sockets.get(self.eio_sid_of(sid))
        return socket is not None and not socket.closed

    async def disconnect(self, sid: str) -> None:
        """A Socket.IO disconnect (the client is told to stay away), after whatever was
        queued for it. Public API: ``AsyncServer.disconnect``."""
        await self._sio.disconnect(sid)

    async def drop_slow_consumers(
        self, *, max_queued: int, metrics: HubMetrics, interval: float = 1.0
    ) -> None:
        """Until cancelled: once per ``interval``, drop the transport of every client with
        more than ``max_queued`` packets waiting (it stopped reading), so its memory is
        freed and it reconnects and catches up with ``message:sync``.

        Relies on: ``sio.eio.sockets`` and each socket's ``queue`` (an ``asyncio.Queue``
        of the packets its writer has not sent yet)."""
        dropped = metrics.connects.labels(outcome="dropped_slow_consumer")
        while True:
            await asyncio.sleep(interval)
            for socket in list(self._sio.eio.sockets.values()):
                if socket.closed or socket.queue.qsize() <= max_queued:
                    continue
                log.warning(
                    "dropping a client that stopped reading (%d queued)", socket.queue.qsize()
                )
                dropped.inc()
                await drop_transport(socket)

    async def close_unconnected(self, *, timeout_seconds: float) -> None:
        """Until cancelled: drop the transport of every Engine.IO session that has had no
        Socket.IO session in the default namespace for ``timeout_seconds`` (it never sent a
        CONNECT, or sent a DISCONNECT and stayed): such a client costs memory and nothing
        limits it.

        Relies on: ``sio.eio.sockets`` and ``sio.manager.sid_from_eio_sid(eio_sid, "/")``
        (undocumented), None while no Socket.IO session is open on that Engine.IO session."""
        interval = min(1.0, timeout_seconds / 2)
        unconnected_since: dict[str, float] = {}
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            sockets = self._sio.eio.sockets
            for eio_sid in [e for e in unconnected_since if e not in sockets]:
                del unconnected_since[eio_sid]
            for eio_sid, socket in list(sockets.items()):
                if self._sio.manager.sid_from_eio_sid(eio_sid, "/") is not None:
                    unconnected_since.pop(eio_sid, None)
                    continue
                since = unconnected_since.setdefault(eio_sid, now)
                if now - since >= timeout_seconds and not socket.closed:
                    del unconnected_since[eio_sid]
                    await drop_transport(socket)

    async def drop_all(self) -> int:
        """Drop every client's transport (see ``drop_transport``); how many there were.

        Relies on: ``sio.eio.sockets``."""
        sockets = list(self._sio.eio.sockets.values())
        for socket in sockets:
            await drop_transport(socket)
        return len(sockets)


async def drop_transport(socket: Any) -> None:
    """Close an Engine.IO socket's transport without a Socket.IO disconnect packet, so the
    official client reconnects by itself; frees whatever was still queued for it.

    Relies on: ``socket.close(wait=False, abort=True)`` marking the socket closed (and
    running the disconnect handlers) without sending anything, but leaving its writer
    waiting on ``socket.queue`` (and possibly on a full TCP buffer); emptying the queue
    frees the memory and the ``None`` a writer reads as "stop" makes it close the websocket.
    """
    try:
        await socket.close(wait=False, abort=True)
    except Exception:
        log.debug("closing a transport failed; freeing its queue anyway", exc_info=True)
    while not socket.queue.empty():
        socket.queue.get_nowait()
        socket.queue.task_done()
    socket.queue.put_nowait(None)
