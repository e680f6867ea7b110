"""The websocket under Engine.IO, without per-message compression.

Messages are NaCl ciphertext in base64, which deflate shrinks by only about a quarter while
costing CPU on every frame, for every recipient. Clients that offer permessage-deflate
(Node's ``ws``, browsers) simply don't get it; the protocol is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from engineio.async_drivers.aiohttp import WebSocket

from hub.metrics import HubMetrics

log = logging.getLogger(__name__)


async def drop_slow_consumers(
    sio: Any, *, max_queued: int, metrics: HubMetrics, interval: float = 1.0
) -> None:
    """Until cancelled: check every socket's outgoing queue once per ``interval``."""
    dropped = metrics.connects.labels(outcome="dropped_slow_consumer")
    while True:
        await asyncio.sleep(interval)
        for socket in list(sio.eio.sockets.values()):
            if socket.closed or socket.queue.qsize() <= max_queued:
                continue
            log.warning("dropping a client that stopped reading (%d queued)", socket.queue.qsize())
            dropped.inc()
            await drop_transport(socket)


class UncompressedWebSocket(WebSocket):  # type: ignore[misc]
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
    """Swap python-engineio's aiohttp websocket for ours on this server only."""
    sio.eio._async = {**sio.eio._async, "websocket": UncompressedWebSocket}


async def drop_transport(socket: Any) -> None:
    """Close an Engine.IO socket's transport without a Socket.IO disconnect packet, so the
    official client reconnects by itself; frees whatever was still queued for it.

    Engine.IO's ``close(abort=True)`` marks the socket closed but leaves its writer waiting
    on the queue (and possibly on a full TCP buffer): emptying the queue frees the memory and
    the ``None`` wakes the writer, which then closes the websocket.
    """
    with contextlib.suppress(Exception):
        await socket.close(wait=False, abort=True)
    while not socket.queue.empty():
        socket.queue.get_nowait()
        socket.queue.task_done()
    socket.queue.put_nowait(None)
