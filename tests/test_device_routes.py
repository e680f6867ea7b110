"""Devices over REST and recent authentication, over two hub nodes: the list (current,
online), renaming and removing a device (``devices:changed`` to the others; removal revokes
at once and, for another device, needs a recent authentication), ``/api/auth/reauth``, and
what else hands over the account: a biometric key, replacing the public key, logout of all."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import pytest_asyncio

from tests.support import Api, HubNode, Phone, two_nodes
from tests.support.clients import PASSWORD, login_device

REAUTH_SECONDS = 2


@pytest_asyncio.fixture
async def nodes(test_env: Any, tmp_path: Path) -> AsyncIterator[tuple[HubNode, HubNode]]:
    env = test_env.hub_env(REAUTH_MAX_AGE_SECONDS=str(REAUTH_SECONDS), DEVICE_TTL_SECONDS="3")
    async with two_nodes(env, tmp_path) as (node_a, node_b):
        yield node_a, node_b


async def stale() -> None:
    await asyncio.sleep(REAUTH_SECONDS + 1.2)


async def reauth(api: Api, token: str) -> Any:
    status, body = await api.request(
        "POST", "/api/auth/reauth", token=token, json={"password": PASSWORD}
    )
    assert status == 200, body
    return body


def items_by_id(body: Any) -> dict[str, Any]:
    return {item["id"]: item for item in body["items"]}


async def test_the_device_list_says_which_is_current_and_which_is_online(
    nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    phone = await login_device(api, alice, "phone", name="Alice's phone", platform="ios")
    laptop = await login_device(api, alice, "laptop", platform="web")
    socket = await Phone(alice, "laptop").connect(node_b.url, token=laptop["accessToken"])
    try:
        status, body = await api.request("GET", "/api/devices", token=phone["accessToken"])
        assert status == 200, body
        devices = items_by_id(body)
        assert set(devices) == {"phone", "laptop"}, body
        assert devices["phone"]["current"] is True and devices["phone"]["online"] is False
        assert devices["phone"]["name"] == "Alice's phone" and devices["phone"]["platform"] == "ios"
        assert devices["laptop"]["current"] is False and devices["laptop"]["online"] is True
        assert isinstance(devices["laptop"]["createdAt"], int)
    finally:
        await socket.close()


async def test_renaming_a_device_tells_the_others_and_strangers_get_404(
    nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = nodes
    api = Api(node_a.url)
    alice, mallory = await api.register_many("alice", "mallory")
    phone = await login_device(api, alice, "phone")
    laptop = await login_device(api, alice, "laptop")
    listener = await Phone(alice, "laptop").connect(node_b.url, token=laptop["accessToken"])
    try:
        status, body = await api.request(
            "PATCH", "/api/devices/phone", token=phone["accessToken"], json={"name": "Old one"}
        )
        assert status == 200 and body["name"] == "Old one" and body["current"] is True, body
        changed = await listener.next("devices:changed", timeout=3)
        assert {d["id"]: d["name"] for d in changed["devices"]}["phone"] == "Old one"
        for method, json in (("PATCH", {"name": "Pwned"}), ("DELETE", None)):
            status, body = await api.request(
                method, "/api/devices/phone", token=mallory.access_token, json=json
            )
            assert status == 404 and body["error"]["code"] == "not_found", body
        status, body = await api.request(
            "PATCH", "/api/devices/bad device!", token=phone["accessToken"], json={"name": "x"}
        )
        assert status == 400, body
    finally:
        await listener.close()


async def test_removing_another_device_needs_recent_auth_and_ends_it_on_every_node(
    nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    phone = await login_device(api, alice, "phone")
    laptop = await login_device(api, alice, "laptop")
    socket = Phone(alice, "laptop")
    disconnected = asyncio.Event()

    async def on_disconnect(*_: Any) -> None:
        disconnected.set()

    socket.client.on("disconnect", on_disconnect)
    await socket.connect(node_b.url, token=laptop["accessToken"])
    try:
        await stale()
        status, body = await api.request(
            "DELETE", "/api/devices/laptop", token=phone["accessToken"]
        )
        assert status == 401 and body["error"]["code"] == "reauth_required", body
        assert socket.client.connected
        fresh = await reauth(api, phone["accessToken"])
        started = time.monotonic()
        status, body = await api.request(
            "DELETE", "/api/devices/laptop", token=fresh["accessToken"]
        )
        assert status == 204, body
        assert await socket.next("session:revoked", timeout=2) == {"reason": "device_removed"}
        await asyncio.wait_for(disconnected.wait(), 2)
        assert time.monotonic() - started < 2.5
        status, body = await Api(node_b.url).request(
            "GET", f"/api/users/{alice.id}", token=laptop["accessToken"]
        )
        assert status == 401 and body["error"]["code"] == "session_revoked", body
        status, body = await api.request("GET", "/api/devices", token=fresh["accessToken"])
        assert set(items_by_id(body)) == {"phone"}, body
    finally:
        await socket.close()


async def test_removing_this_device_is_a_logout_and_needs_no_reauth(
    nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, _ = nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    phone = await login_device(api, alice, "phone")
    await stale()
    status, body = await api.request("DELETE", "/api/devices/phone", token=phone["accessToken"])
    assert status == 204, body
    status, body = await api.request(
        "POST", "/api/auth/refresh", json={"refreshToken": phone["refreshToken"]}
    )
    assert status == 401, body


async def test_logout_of_all_devices_needs_recent_auth(nodes: tuple[HubNode, HubNode]) -> None:
    node_a, _ = nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    phone = await login_device(api, alice, "phone")
    await stale()
    status, body = await api.request(
        "POST", "/api/auth/logout", token=phone["accessToken"], json={"all": True}
    )
    assert status == 401 and body["error"]["code"] == "reauth_required", body
    fresh = await reauth(api, phone["accessToken"])
    status, body = await api.request(
        "POST", "/api/auth/logout", token=fresh["accessToken"], json={"all": True}
    )
    assert status == 204, body


def new_verify_key() -> tuple[nacl.signing.SigningKey, str]:
    key = nacl.signing.SigningKey.generate()
    return key, base64.b64encode(bytes(key.verify_key)).decode()


async def test_a_biometric_key_needs_recent_auth_belongs_to_its_device_and_dies_with_it(
    nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    phone = await login_device(api, alice, "phone")
    await stale()
    key, verify_key = new_verify_key()
    body_in = {"publicKey": verify_key, "deviceName": "phone"}
    status, body = await api.request(
        "POST", "/api/auth/biometric/keys", token=phone["accessToken"], json=body_in
    )
    assert status == 401 and body["error"]["code"] == "reauth_required", body

    fresh = await reauth(api, phone["accessToken"])
    status, body = await Api(node_b.url).request(
        "POST", "/api/auth/biometric/keys", token=fresh["accessToken"], json=body_in
    )
    assert status == 201, body
    key_id = body["keyId"]
    status, body = await api.request("GET", "/api/auth/biometric/keys", token=fresh["accessToken"])
    assert status == 200, body
    [listed] = body["items"]
    assert listed["id"] == key_id and listed["deviceId"] == "phone", body

    # A biometric reauthentication renews authTime too.
    await stale()
    status, challenge = await api.request(
        "POST", "/api/auth/biometric/challenge", json={"keyId": key_id}
    )
    assert status == 200, challenge
    signature = key.sign(base64.b64decode(challenge["challenge"])).signature
    status, again = await api.request(
        "POST",
        "/api/auth/reauth",
        token=fresh["accessToken"],
        json={
            "challengeId": challenge["challengeId"],
            "signature": base64.b64encode(signature).decode(),
        },
    )
    assert status == 200, again
    # A biometric login without a device is its key's device: it replaces that session.
    status, challenge = await api.request(
        "POST", "/api/auth/biometric/challenge", json={"keyId": key_id}
    )
    signature = key.sign(base64.b64decode(challenge["challenge"])).signature
    status, relogged = await api.request(
        "POST",
        "/api/auth/biometric",
        json={
            "challengeId": challenge["challengeId"],
            "signature": base64.b64encode(signature).decode(),
        },
    )
    assert status == 200 and relogged["device"]["id"] == "phone", relogged
    status, body = await api.request("GET", "/api/users/" + alice.id, token=again["accessToken"])
    assert status == 401 and body["error"]["code"] == "session_revoked", body
    again = relogged
    status, body = await api.request("DELETE", "/api/devices/phone", token=again["accessToken"])
    assert status == 204, body
    other = await login_device(api, alice, "tablet")
    status, body = await api.request("GET", "/api/auth/biometric/keys", token=other["accessToken"])
    assert status == 200 and body["items"] == [], "the key died with its device"


async def test_replacing_a_public_key_needs_recent_auth_but_the_first_does_not(
    nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, _ = nodes
    api = Api(node_a.url)
    alice = await api.register("alice", with_key=False)
    await stale()
    first = base64.b64encode(bytes(32)).decode()
    second = base64.b64encode(bytes([1]) * 32).decode()
    path = f"/api/users/{alice.id}/public-key"
    status, body = await api.request(
        "PUT", path, token=alice.access_token, json={"publicKey": first}
    )
    assert status == 200, body
    status, body = await api.request(
        "PUT", path, token=alice.access_token, json={"publicKey": second}
    )
    assert status == 401 and body["error"]["code"] == "reauth_required", body
    fresh = await reauth(api, alice.access_token)
    status, body = await api.request(
        "PUT", path, token=fresh["accessToken"], json={"publicKey": second}
    )
    assert status == 200 and body["publicKey"] == second, body


@pytest.mark.parametrize(
    "body",
    [{}, {"password": PASSWORD, "signature": base64.b64encode(bytes(64)).decode()}, {"x": 1}],
)
async def test_reauth_takes_exactly_one_proof(nodes: tuple[HubNode, HubNode], body: Any) -> None:
    node_a, _ = nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    status, answer = await api.request(
        "POST", "/api/auth/reauth", token=alice.access_token, json=body
    )
    assert status == 400 and answer["error"]["code"] == "invalid_payload", answer
    status, answer = await api.request(
        "POST", "/api/auth/reauth", token=alice.access_token, json={"password": "wrong"}
    )
    assert status == 401, answer
