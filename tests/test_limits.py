"""Limits (issue 7), each with a clear error: Socket.IO packet size, per-field bounds, the
per-connection event budget, connections per user across nodes, login attempts per IP across
nodes, and the REST body size. (The REST request limit is in test_rate_limit.py; the login
limit per account in test_accounts.py; floods of every kind in test_hostile_socket.py.)"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nacl.signing
import pytest
import pytest_asyncio
import socketio
import socketio.exceptions

from tests.support import Account, Api, HubNode, Phone, seal, start_hub_node
from tests.support.bands import create_band
from tests.support.module_hub import shared_hub
from tests.support.servers import Servers

PACKET_LIMIT = 96 * 1024  # MAX_SOCKET_PAYLOAD_BYTES of the module's node


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


class Watched(Phone):
    """A phone that notes when its connection goes away."""

    def __init__(self, account: Account, device: str = "phone") -> None:
        super().__init__(account, device)
        self.gone = asyncio.Event()

        async def on_disconnect(*_: Any) -> None:
            self.gone.set()

        self.client.on("disconnect", on_disconnect)


@pytest_asyncio.fixture(scope="module")
async def small_hub(servers: Servers) -> AsyncIterator[tuple[str, HubNode]]:
    async with shared_hub(servers, MAX_SOCKET_PAYLOAD_BYTES=str(PACKET_LIMIT)) as (env, node):
        yield env.database_url, node


@pytest.fixture
def small_packets(small_hub: tuple[str, HubNode]) -> HubNode:
    return small_hub[1]


@pytest.fixture
def small_packets_db(small_hub: tuple[str, HubNode]) -> str:
    return small_hub[0]


async def test_a_packet_over_the_limit_closes_only_that_connection(small_packets: HubNode) -> None:
    api = Api(small_packets.url)
    alice, bob = await api.register_many("alice", "bob")
    big = Watched(alice, "big")
    other = await Phone(alice, "other").connect(small_packets.url)
    reader = await Phone(bob).connect(small_packets.url)
    await big.connect(small_packets.url)
    try:
        payload = {"id": str(uuid.uuid4()), "to": bob.id, "ciphertext": "A" * PACKET_LIMIT}
        await big.client.emit("message:send", {**payload, "nonce": b64(24)})
        await asyncio.wait_for(big.gone.wait(), 10)
        assert not big.client.connected
        # Nothing of it was stored, and everyone else is still connected and served.
        assert (await reader.call("message:sync", {"after": 0}))["messages"] == []
        sent = await other.call(
            "message:send", {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "still")}
        )
        assert sent["ok"] is True
        assert (await reader.next("message:new"))["id"] == sent["id"]
        again = await Phone(alice, "big").connect(small_packets.url)
        assert (await again.call("message:sync", {"after": 0}))["ok"] is True
        await again.close()
    finally:
        for phone in (big, other, reader):
            await phone.close()


async def test_a_packet_just_under_the_limit_is_read(small_packets: HubNode) -> None:
    api = Api(small_packets.url)
    alice, bob = await api.register_many("alice", "bob")
    phone = await Phone(alice).connect(small_packets.url)
    try:
        # The largest ciphertext the protocol allows fits a 96 KiB packet.
        payload = {"id": str(uuid.uuid4()), "to": bob.id, "ciphertext": b64(64 * 1024)}
        ack = await phone.call("message:send", {**payload, "nonce": b64(24)})
        assert ack["ok"] is True, ack
    finally:
        await phone.close()


def over_bound_payloads(alice: Account, bob: Account, band_id: str) -> dict[str, Any]:
    """One payload per bounded field, each one past its bound (docs/protocol.md) and inside
    the packet limit."""
    envelope = {"to": bob.id, **seal(alice, bob, "x")}
    direct = {"id": str(uuid.uuid4()), "to": bob.id, "nonce": b64(24)}
    return {
        "ciphertext 64 KiB + 1": ("message:send", {**direct, "ciphertext": b64(64 * 1024 + 1)}),
        "ciphertext 64 KiB + 2": ("message:send", {**direct, "ciphertext": b64(64 * 1024 + 2)}),
        "ciphertext far over": ("message:send", {**direct, "ciphertext": "A" * 90_000}),
        "256 envelopes": (
            "message:send",
            {"id": str(uuid.uuid4()), "band": band_id, "envelopes": [envelope] * 256},
        ),
        "501 delivered ids": ("message:delivered", {"ids": [str(uuid.uuid4())] * 501}),
        "501 read ids": ("message:read", {"ids": [str(uuid.uuid4())] * 501}),
        "201 presence users": ("presence:subscribe", {"users": [bob.id] * 201}),
        "201 unsubscribed users": ("presence:unsubscribe", {"users": [bob.id] * 201}),
        "token of 4097 chars": ("session:refresh", {"token": "t" * 4097}),
    }


FIELDS_OVER_BOUND = [
    "ciphertext 64 KiB + 1",
    "ciphertext 64 KiB + 2",
    "ciphertext far over",
    "256 envelopes",
    "501 delivered ids",
    "501 read ids",
    "201 presence users",
    "201 unsubscribed users",
    "token of 4097 chars",
]


@pytest.mark.parametrize("case", FIELDS_OVER_BOUND)
async def test_a_field_over_its_bound_is_too_large(small_packets: HubNode, case: str) -> None:
    api = Api(small_packets.url)
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob)
    phone = await Phone(alice).connect(small_packets.url)
    try:
        event, payload = over_bound_payloads(alice, bob, band["id"])[case]
        ack = await phone.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "too_large", ack
        assert ack["error"]["message"]
        assert phone.client.connected
        assert (await phone.call("message:sync", {"after": 0}))["messages"] == []
    finally:
        await phone.close()


@pytest.mark.parametrize("size", [23, 25, 32, 100])
async def test_a_nonce_of_another_size_is_invalid_not_too_large(
    small_packets: HubNode, size: int
) -> None:
    """The nonce has one size: any other is malformed, however long."""
    api = Api(small_packets.url)
    alice, bob = await api.register_many("alice", "bob")
    phone = await Phone(alice).connect(small_packets.url)
    try:
        payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "x")}
        ack = await phone.call("message:send", {**payload, "nonce": b64(size)})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
        assert ack["error"]["details"] == {"field": "nonce"}
    finally:
        await phone.close()


async def test_a_watch_list_over_a_thousand_users_is_too_large(
    small_packets: HubNode, small_packets_db: str
) -> None:
    """A connection watches at most 1,000 users (each subscribe names at most 200)."""
    alice = await Api(small_packets.url).register("alice", with_key=False)
    band_id = str(uuid.uuid4())
    others = [str(uuid.uuid4()) for _ in range(1_001)]
    conn = await asyncpg.connect(small_packets_db)
    try:
        await conn.executemany(
            "INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, 'x', 'fan')",
            [(u, f"{u}@example.com") for u in others],
        )
        await conn.execute(
            "INSERT INTO bands (id, name, owner_id) VALUES ($1, 'Big Band', $2)", band_id, alice.id
        )
        await conn.executemany(
            "INSERT INTO band_members (band_id, user_id, role, joined_at) VALUES ($1, $2, $3, 0)",
            [(band_id, alice.id, "owner")] + [(band_id, u, "member") for u in others],
        )
    finally:
        await conn.close()
    phone = await Phone(alice).connect(small_packets.url)
    try:
        for start in range(0, 1_000, 200):
            ack = await phone.call("presence:subscribe", {"users": others[start : start + 200]})
            assert ack["ok"] is True, ack
        ack = await phone.call("presence:subscribe", {"users": others[1_000:]})
        assert ack["ok"] is False and ack["error"]["code"] == "too_large", ack
        # Watching again someone already watched is no extra cost.
        assert (await phone.call("presence:subscribe", {"users": others[:3]}))["ok"] is True
        assert (await phone.call("presence:unsubscribe", {"users": others[:1]}))["ok"] is True
        assert (await phone.call("presence:subscribe", {"users": others[1_000:]}))["ok"] is True
    finally:
        await phone.close()


async def test_the_event_budget_is_per_connection(test_env: Any, tmp_path: Path) -> None:
    env = test_env.hub_env(SOCKET_EVENTS_PER_SECOND="2", SOCKET_EVENT_BURST="10")
    node = await start_hub_node(env, tmp_path / "budget", "budget")
    try:
        alice = await Api(node.url).register("alice")
        flooded = await Phone(alice, "flooded").connect(node.url)
        calm = await Phone(alice, "calm").connect(node.url)
        try:
            acks = await asyncio.gather(
                *(flooded.call("message:sync", {"after": 0}) for _ in range(30))
            )
            limited = [a for a in acks if not a["ok"]]
            assert 18 <= len(limited) <= 20, acks
            assert {a["error"]["code"] for a in limited} == {"rate_limited"}
            assert all(a["error"]["retryable"] is True for a in limited)
            # The same user's other connection has its own budget.
            calm_acks = await asyncio.gather(
                *(calm.call("message:sync", {"after": 0}) for _ in range(10))
            )
            assert all(a["ok"] for a in calm_acks), calm_acks
        finally:
            await flooded.close()
            await calm.close()
    finally:
        await node.stop()


# Connections per user, counted in Redis across nodes.


async def refused(url: str, account: Account, device: str) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        errors.append(data)

    client.on("connect_error", on_connect_error)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                url,
                auth={"token": await account.token_for(device, url), "device": device},
                transports=["websocket"],
                wait_timeout=10,
            )
    finally:
        await client.disconnect()
    assert len(errors) == 1, errors
    return errors[0]


async def connect_when_allowed(url: str, account: Account, device: str) -> Phone:
    """The hub records a disconnect a moment after the socket closes: retry until then."""
    deadline = time.monotonic() + 10
    while True:
        phone = Phone(account, device)
        try:
            return await phone.connect(url)
        except socketio.exceptions.ConnectionError:
            await phone.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_devices_per_user_are_counted_across_nodes(test_env: Any, tmp_path: Path) -> None:
    env = test_env.hub_env(MAX_DEVICES_PER_USER="2")
    node_a, node_b = await asyncio.gather(
        start_hub_node(env, tmp_path / "a", "node-a"),
        start_hub_node(env, tmp_path / "b", "node-b"),
    )
    try:
        alice, bob = await Api(node_a.url).register_many("alice", "bob")
        phone = await Phone(alice, "phone").connect(node_a.url)
        tablet = await Phone(alice, "tablet").connect(node_b.url)
        for node in (node_b, node_a):
            error = await refused(node.url, alice, "laptop")
            assert error["message"] == "rate_limited", error
            assert error["data"]["code"] == "rate_limited"
            assert "2 devices" in error["data"]["message"]
        # Another user is not affected, and a device already counted may reconnect anywhere.
        bobs = await Phone(bob, "phone").connect(node_b.url)
        tablet_again = await Phone(alice, "tablet").connect(node_a.url)
        await tablet.close()
        await tablet_again.close()
        await phone.close()
        # Once one leaves, a new device gets its place, on either node.
        laptop = await connect_when_allowed(node_b.url, alice, "laptop")
        assert (await laptop.call("message:sync", {"after": 0}))["ok"] is True
        for client in (laptop, bobs):
            await client.close()
    finally:
        await asyncio.gather(node_a.stop(), node_b.stop())


# Login attempts per IP, counted in Redis across nodes (per account: test_accounts.py).


async def test_login_attempts_per_ip_hold_across_nodes_and_for_biometric_login(
    test_env: Any, tmp_path: Path
) -> None:
    env = test_env.hub_env(LOGIN_ATTEMPTS_PER_IP="4", LOGIN_ATTEMPTS_PER_ACCOUNT="50")
    node_a, node_b = await asyncio.gather(
        start_hub_node(env, tmp_path / "a", "node-a"),
        start_hub_node(env, tmp_path / "b", "node-b"),
    )
    try:
        api_a, api_b = Api(node_a.url), Api(node_b.url)
        victims = await api_a.register_many("v1", "v2", "v3", "v4")
        signer = nacl.signing.SigningKey.generate()
        status, key = await api_a.request(
            "POST",
            "/api/auth/biometric/keys",
            token=victims[0].access_token,
            json={
                "publicKey": base64.b64encode(bytes(signer.verify_key)).decode(),
                "deviceName": "phone",
            },
        )
        assert status == 201, key
        # Four guesses at four accounts, from one address, spread over both nodes.
        for victim, api in zip(victims, (api_a, api_b, api_a, api_b), strict=True):
            status, _ = await api.request(
                "POST", "/api/auth/login", json={"email": victim.email, "password": "guess-123"}
            )
            assert status == 401
        for api in (api_a, api_b):
            status, body = await api.request(
                "POST",
                "/api/auth/login",
                json={"email": victims[0].email, "password": "correct horse battery"},
            )
            assert status == 429 and body["error"]["code"] == "rate_limited", body
            assert body["error"]["details"]["retryAfter"] >= 1
        status, challenge = await api_b.request(
            "POST", "/api/auth/biometric/challenge", json={"keyId": key["keyId"]}
        )
        assert status == 200
        signature = signer.sign(base64.b64decode(challenge["challenge"])).signature
        status, body = await api_b.request(
            "POST",
            "/api/auth/biometric",
            json={
                "challengeId": challenge["challengeId"],
                "signature": base64.b64encode(signature).decode(),
            },
        )
        assert status == 429 and body["error"]["code"] == "rate_limited", body
    finally:
        await asyncio.gather(node_a.stop(), node_b.stop())


async def test_a_rest_body_over_one_mib_is_too_large(small_packets: HubNode) -> None:
    alice = await Api(small_packets.url).register("alice", with_key=False)
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            small_packets.url + "/api/bands",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 413
        answer = await response.json()
    assert answer["error"]["code"] == "too_large"
    status, bands = await Api(small_packets.url).request(
        "GET", "/api/bands", token=alice.access_token
    )
    assert status == 200 and bands["items"] == []
