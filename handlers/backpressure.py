"""Slow and dead consumers: a client that stops reading must not grow the hub's memory.

Engine.IO queues outgoing packets per socket without a bound. Once a socket's queue holds
more than ``max_queued`` packets, the client is not keeping up: its transport is dropped (it
reconnects and catches up with ``message:sync``), and the queue is freed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from handlers.websocket import drop_transport
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
