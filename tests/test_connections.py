"""Connections: a connect that completes after its client left undoes its registration (no
ghost kept online by heartbeats), and CONNECT attempts count against a per-user rate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import socketio
import socketio.exceptions

from tests.support import Api, start_hub_node


async def connect_and_leave(url: str, token: str, device: str) -> None:
    """Open Engine.IO, send the Socket.IO CONNECT, and close without waiting for its answer."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        opened = await ws.receive_str()
        assert opened.startswith("0"), opened
        await ws.send_str("40" + orjson.dumps({"token": token, "device": device}).decode())
        await ws.close()


async def test_a_hundred_connect_then_close_cycles_leave_no_ghost(
    test_env: Any, tmp_path: Path
) -> None:
    env = test_env.hub_env(CONNECTS_PER_MINUTE="1000", DEVICE_TTL_SECONDS="3")
    node = await start_hub_node(env, tmp_path / "node-a", "node-a")
    try:
        api = Api(node.url)
        alice = await api.register("alice")
        for _ in range(100):
            await connect_and_leave(node.url, alice.access_token, "phone")
        await asyncio.sleep(4)  # past a heartbeat and the device TTL
        status, body = await api.request("GET", "/api/devices", token=alice.access_token)
        assert status == 200, body
        assert [d["online"] for d in body["items"]] == [False], body
    finally:
        await node.stop()


async def test_connects_past_the_per_user_rate_are_refused(test_env: Any, tmp_path: Path) -> None:
    env = test_env.hub_env(CONNECTS_PER_MINUTE="3")
    node = await start_hub_node(env, tmp_path / "node-a", "node-a")
    try:
        api = Api(node.url)
        alice, bob = await api.register_many("alice", "bob")
        for _ in range(3):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                node.url,
                auth={"token": alice.access_token, "device": "phone"},
                transports=["websocket"],
            )
            await client.disconnect()
        errors: list[Any] = []
        client = socketio.AsyncClient(reconnection=False)
        client.on("connect_error", lambda data=None: errors.append(data))
        try:
            await client.connect(
                node.url,
                auth={"token": alice.access_token, "device": "phone"},
                transports=["websocket"],
            )
        except socketio.exceptions.ConnectionError:
            pass
        assert errors and errors[0]["data"]["code"] == "rate_limited", errors
        other = socketio.AsyncClient(reconnection=False)
        await other.connect(
            node.url, auth={"token": bob.access_token, "device": "phone"}, transports=["websocket"]
        )
        await other.disconnect()
    finally:
        await node.stop()


async def test_an_engineio_session_without_a_connect_is_closed(
    test_env: Any, tmp_path: Path
) -> None:
    env = test_env.hub_env(CONNECT_TIMEOUT_SECONDS="2")
    node = await start_hub_node(env, tmp_path / "node-a", "node-a")
    try:
        api = Api(node.url)
        alice = await api.register("alice")
        phone = socketio.AsyncClient(reconnection=False)
        await phone.connect(
            node.url,
            auth={"token": alice.access_token, "device": "phone"},
            transports=["websocket"],
        )
        ws_url = node.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
            assert (await ws.receive_str()).startswith("0")
            started = asyncio.get_running_loop().time()
            while True:  # answer pings until the hub closes us
                message = await asyncio.wait_for(ws.receive(), 10)
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                if message.data == "2":
                    await ws.send_str("3")
            waited = asyncio.get_running_loop().time() - started
        assert 1.5 <= waited <= 5, waited
        assert phone.connected, "a connected client is left alone"
        await phone.disconnect()
    finally:
        await node.stop()
