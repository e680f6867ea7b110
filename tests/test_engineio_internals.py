"""What ``handlers/engineio_internals.py`` relies on in python-engineio and python-socketio.

These fail loudly when an upgrade moves an internal the hub reaches for: the pins in
``pyproject.toml`` say which minor versions the module was read from, and the rest drive a
real Socket.IO server (in this process, on loopback) through each internal it uses.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import aiohttp
import engineio.async_drivers.aiohttp
import engineio.async_socket
import pytest
import socketio
from aiohttp import web

from handlers.engineio_internals import (
    MALFORMED_EVENT,
    ClientPacket,
    EngineSockets,
    UncompressedWebSocket,
    drop_transport,
    use_uncompressed_websockets,
)
from tests.support import ROOT, free_port

PINNED = ("python-engineio", "python-socketio")


def _pinned_minor(package: str) -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for requirement in pyproject["project"]["dependencies"]:
        found = re.fullmatch(rf"{package}>=(\d+)\.(\d+)(?:\.\d+)?,<(\d+)\.(\d+)", requirement)
        if found:
            major, minor, below_major, below_minor = map(int, found.groups())
            assert (below_major, below_minor) == (major, minor + 1), requirement
            return f"{major}.{minor}"
    raise AssertionError(f"{package} is not pinned to one minor version in pyproject.toml")


@pytest.mark.parametrize("package", PINNED)
def test_the_installed_version_is_the_pinned_minor(package: str) -> None:
    installed = ".".join(metadata.version(package).split(".")[:2])
    pinned = _pinned_minor(package)
    assert installed == pinned, (
        f"{package} {installed} is installed but handlers/engineio_internals.py was read "
        f"against {pinned}: read the module's comments against the new version, then move "
        "the pin"
    )


def test_the_internals_the_module_names_are_there() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp", serializer=ClientPacket)
    assert isinstance(sio.eio.sockets, dict), "sio.eio.sockets: Engine.IO sid -> socket"
    assert "websocket" in sio.eio._async, "sio.eio._async['websocket']: the websocket class"
    assert sio.eio._async["websocket"] is engineio.async_drivers.aiohttp.WebSocket
    assert callable(sio.manager.eio_sid_from_sid), "sio.manager.eio_sid_from_sid(sid, ns)"
    assert sio.packet_class is ClientPacket, "AsyncServer(serializer=) sets packet_class"
    for name in ("send", "close", "check_ping_timeout"):
        assert callable(getattr(engineio.async_socket.AsyncSocket, name, None)), name
    socket = engineio.async_socket.AsyncSocket(sio.eio, "sid")
    assert isinstance(socket.queue, asyncio.Queue), "socket.queue: the outgoing packets"
    assert socket.closed is False
    websocket = engineio.async_drivers.aiohttp.WebSocket(handler=None, server=sio.eio)
    assert hasattr(websocket, "_sock"), "WebSocket keeps the aiohttp response in _sock"


def test_a_client_event_that_is_not_a_named_event_becomes_the_malformed_one() -> None:
    for encoded in ('21["disconnect"]', "21[{}]", "21{", "21[]", '21["*",{}]'):
        packet = ClientPacket(encoded_packet=encoded)
        assert packet.packet_type == 2 and packet.data[0] == MALFORMED_EVENT, encoded
    assert ClientPacket(encoded_packet='21["ping",{"a":1}]').data == ["ping", {"a": 1}]
    refused = ClientPacket(encoded_packet='4{"message":"x"}')  # CONNECT_ERROR: server only
    assert refused.data[0] == MALFORMED_EVENT
    garbled_connect = ClientPacket(encoded_packet="0{nope")
    assert garbled_connect.packet_type == 0 and garbled_connect.data is None


@dataclass
class Served:
    sio: socketio.AsyncServer
    url: str
    sids: asyncio.Queue[str]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    sio = socketio.AsyncServer(async_mode="aiohttp", serializer=ClientPacket)
    use_uncompressed_websockets(sio)
    sids: asyncio.Queue[str] = asyncio.Queue()

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sids.put(sid)

    sio.on("connect", connect)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(sio, f"http://127.0.0.1:{port}", sids)
    finally:
        await runner.cleanup()


async def test_an_encoded_event_queued_on_the_socket_reaches_the_client(served: Served) -> None:
    client = socketio.AsyncClient(reconnection=False)
    received: asyncio.Queue[Any] = asyncio.Queue()
    client.on("note", received.put)
    await client.connect(served.url, transports=["websocket"], wait_timeout=5)
    try:
        sid = await asyncio.wait_for(served.sids.get(), 5)
        sockets = EngineSockets(served.sio)
        eio_sid = sockets.eio_sid_of(sid)
        assert eio_sid in served.sio.eio.sockets
        encoded = sockets.encode_event("note", {"n": 1})
        assert await sockets.send(eio_sid, encoded)
        assert await sockets.send(eio_sid, encoded)  # one encoding, sent twice
        assert await asyncio.wait_for(received.get(), 5) == {"n": 1}
        assert await asyncio.wait_for(received.get(), 5) == {"n": 1}
        assert not await sockets.send("no-such-socket", encoded)
        assert sockets.eio_sid_of("no-such-sid") == ""
    finally:
        await client.disconnect()


async def test_a_dropped_transport_is_a_transport_error_for_the_client(served: Served) -> None:
    """No Socket.IO disconnect packet: the official client reconnects after this one."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: asyncio.Queue[str] = asyncio.Queue()

    async def disconnected(reason: str) -> None:
        await reasons.put(reason)

    client.on("disconnect", disconnected)
    await client.connect(served.url, transports=["websocket"], wait_timeout=5)
    sid = await asyncio.wait_for(served.sids.get(), 5)
    socket = served.sio.eio.sockets[EngineSockets(served.sio).eio_sid_of(sid)]
    for _ in range(3):
        socket.queue.put_nowait(EngineSockets(served.sio).encode_event("note", {}))
    await drop_transport(socket)
    assert socket.closed
    assert await asyncio.wait_for(reasons.get(), 5) == client.reason.TRANSPORT_ERROR
    await client.disconnect()


async def test_the_websocket_refuses_per_message_compression(served: Served) -> None:
    assert served.sio.eio._async["websocket"] is UncompressedWebSocket
    url = f"{served.url}/socket.io/?EIO=4&transport=websocket"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=15) as ws,
    ):
        opening = await ws.receive_str(timeout=5)
        assert opening.startswith("0{"), opening  # the Engine.IO OPEN packet
        assert ws.compress == 0, "the server accepted permessage-deflate"
