"""A client that stops reading is dropped once its queue passes the cap; the hub's memory
does not grow without bound, and everyone else carries on."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
import uuid

import aiohttp

from tests.support import Api, Phone, start_hub_node
from tests.support.bands import make_contacts


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = bytes([0x81, 0x80 | size])
    elif size < 65536:
        header = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def connect_and_stop_reading(port: int, token: str) -> asyncio.StreamWriter:
    """A raw websocket Socket.IO client with a tiny receive buffer that never reads."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=raw)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 101 " in head
    writer.write(masked_text_frame("40" + json.dumps({"token": token, "device": "stuck"})))
    await writer.drain()
    await asyncio.sleep(0.5)  # the hub answers the CONNECT; we never read it, nor anything after
    return writer


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_client_that_stops_reading_is_dropped_and_others_carry_on(test_env, tmp_path):
    env = test_env.hub_env(
        MAX_QUEUED_EVENTS="50", SOCKET_EVENTS_PER_SECOND="1000", SOCKET_EVENT_BURST="1000"
    )
    node = await start_hub_node(env, tmp_path / "a", "a")
    stuck_writer = None
    try:
        api = Api(node.url)
        sender, stuck = await api.register_many("sender", "stuck")
        await make_contacts(api, sender, stuck)  # more than a request's 3 messages
        stuck_writer = await connect_and_stop_reading(node.port, stuck.access_token)
        phone = await Phone(sender).connect(node.url)
        blob = base64.b64encode(os.urandom(60_000)).decode()
        nonce = base64.b64encode(os.urandom(24)).decode()
        dropped_name = 'hub_connects_total{outcome="dropped_slow_consumer"}'
        deadline = time.monotonic() + 60
        sent = 0
        while await metric(node.url, dropped_name) < 1:
            assert time.monotonic() < deadline, "the stuck client was never dropped"
            for _ in range(20):
                ack = await phone.call(
                    "message:send",
                    {"id": str(uuid.uuid4()), "to": stuck.id, "ciphertext": blob, "nonce": nonce},
                )
                assert ack["ok"], ack
                sent += 1
        assert sent < 2000
        assert await metric(node.url, "hub_connections") == 1.0  # only the sender is left
        ack = await phone.call("message:sync", {"after": 0})
        assert ack["ok"] and ack["more"] is True  # pages stop at 1 MiB of ciphertext
        assert 1 <= len(ack["messages"]) <= 1024 * 1024 // 45_000
        await phone.close()
    finally:
        if stuck_writer is not None:
            stuck_writer.close()
        await node.stop()
