"""Revocation that takes effect at once, over two hub nodes: a revoked session's access
tokens are refused from the next request (REST 401 ``session_revoked``, connect refused), and
its live sockets on every node get ``session:revoked {reason}`` and are disconnected within
2 s. Logout, logout of every device, a password change, a reused refresh token and a new
login of the same device each revoke."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import socketio
import socketio.exceptions

from tests.support import Account, Api, HubNode, Phone, start_hub_node
from tests.support.clients import PASSWORD, login_device


class Watched:
    """A phone that notes when the hub disconnects it."""

    def __init__(self, account: Account, device: str) -> None:
        self.phone = Phone(account, device)
        self.disconnected = asyncio.Event()

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        self.phone.client.on("disconnect", on_disconnect)

    async def connect(self, node: HubNode, token: str) -> Watched:
        await self.phone.connect(node.url, token=token)
        return self

    async def revoked(self, reason: str) -> None:
        """``session:revoked {reason}`` and the disconnect, both within 2 s."""
        started = time.monotonic()
        assert await self.phone.next("session:revoked", timeout=2) == {"reason": reason}
        await asyncio.wait_for(self.disconnected.wait(), max(0.1, 2 - (time.monotonic() - started)))

    async def still_live(self) -> None:
        with pytest.raises(TimeoutError):
            await self.phone.next("session:revoked", timeout=0.5)
        assert self.phone.client.connected
        assert (await self.phone.call("message:sync", {"after": 0}))["ok"] is True

    async def close(self) -> None:
        await self.phone.close()


async def assert_refused(api: Api, account: Account, token: str) -> None:
    status, body = await api.request("GET", f"/api/users/{account.id}", token=token)
    assert status == 401 and body["error"]["code"] == "session_revoked", body


async def assert_accepted(api: Api, account: Account, token: str) -> None:
    status, body = await api.request("GET", f"/api/users/{account.id}", token=token)
    assert status == 200, body


async def connect_refused(node: HubNode, token: str, device: str) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        errors.append(data)

    client.on("connect_error", on_connect_error)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                node.url, auth={"token": token, "device": device}, transports=["websocket"]
            )
    finally:
        await client.disconnect()
    assert len(errors) == 1 and errors[0]["data"]["code"] == "session_revoked", errors


async def test_logout_ends_the_device_on_every_node_at_once(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    api_a, api_b = Api(node_a.url), Api(node_b.url)
    alice = await api_a.register("alice")
    phone_session = await login_device(api_a, alice, "phone")
    laptop_session = await login_device(api_a, alice, "laptop")
    phone = await Watched(alice, "phone").connect(node_b, phone_session["accessToken"])
    laptop = await Watched(alice, "laptop").connect(node_b, laptop_session["accessToken"])
    try:
        status, body = await api_a.request(
            "POST", "/api/auth/logout", token=phone_session["accessToken"]
        )
        assert status == 204, body
        await phone.revoked("logout")
        await assert_refused(api_a, alice, phone_session["accessToken"])
        await assert_refused(api_b, alice, phone_session["accessToken"])
        await connect_refused(node_a, phone_session["accessToken"], "phone")
        await laptop.still_live()
        await assert_accepted(api_b, alice, laptop_session["accessToken"])
    finally:
        await phone.close()
        await laptop.close()


async def test_logout_all_ends_every_device_and_only_that_users(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    phone_session = await login_device(api, alice, "phone")
    laptop_session = await login_device(api, alice, "laptop")
    phone = await Watched(alice, "phone").connect(node_a, phone_session["accessToken"])
    laptop = await Watched(alice, "laptop").connect(node_b, laptop_session["accessToken"])
    bobs = await Watched(bob, "phone").connect(node_b, bob.access_token)
    try:
        status, body = await api.request(
            "POST", "/api/auth/logout", token=phone_session["accessToken"], json={"all": True}
        )
        assert status == 204, body
        await asyncio.gather(phone.revoked("logout_all"), laptop.revoked("logout_all"))
        for token in (phone_session["accessToken"], laptop_session["accessToken"]):
            await assert_refused(Api(node_b.url), alice, token)
        await bobs.still_live()
    finally:
        await phone.close()
        await laptop.close()
        await bobs.close()


async def test_a_password_change_ends_every_other_device(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    here = await login_device(api, alice, "phone")
    there = await login_device(api, alice, "tablet")
    phone = await Watched(alice, "phone").connect(node_a, here["accessToken"])
    tablet = await Watched(alice, "tablet").connect(node_b, there["accessToken"])
    try:
        status, body = await api.request(
            "POST",
            "/api/auth/password",
            token=here["accessToken"],
            json={"currentPassword": "wrong password", "newPassword": "a new long password"},
        )
        assert status == 401, body
        await tablet.still_live()
        status, body = await api.request(
            "POST",
            "/api/auth/password",
            token=here["accessToken"],
            json={"currentPassword": PASSWORD, "newPassword": "a new long password"},
        )
        assert status == 204, body
        await tablet.revoked("password_changed")
        await assert_refused(api, alice, there["accessToken"])
        await phone.still_live()
        await assert_accepted(api, alice, here["accessToken"])
        status, _ = await api.request(
            "POST", "/api/auth/login", json={"email": alice.email, "password": PASSWORD}
        )
        assert status == 401
        status, _ = await api.request(
            "POST",
            "/api/auth/login",
            json={"email": alice.email, "password": "a new long password"},
        )
        assert status == 200
    finally:
        await phone.close()
        await tablet.close()


async def test_a_new_login_of_the_device_ends_its_old_socket(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    old = await login_device(api, alice, "phone")
    phone = await Watched(alice, "phone").connect(node_b, old["accessToken"])
    try:
        await login_device(Api(node_a.url), alice, "phone")
        await phone.revoked("replaced")
        await assert_refused(api, alice, old["accessToken"])
    finally:
        await phone.close()


@pytest_asyncio.fixture
async def strict_nodes(test_env: Any, tmp_path: Path) -> AsyncIterator[tuple[HubNode, HubNode]]:
    env = test_env.hub_env(REFRESH_REUSE_GRACE_SECONDS="0")
    node_a = await start_hub_node(env, tmp_path / "node-a", "node-a")
    node_b = await start_hub_node(env, tmp_path / "node-b", "node-b")
    try:
        yield node_a, node_b
    finally:
        await node_a.stop()
        await node_b.stop()


async def test_a_reused_refresh_token_ends_the_session(
    strict_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = strict_nodes
    api = Api(node_a.url)
    alice = await api.register(f"alice-{uuid.uuid4().hex[:4]}")
    session = await login_device(api, alice, "phone")
    phone = await Watched(alice, "phone").connect(node_b, session["accessToken"])
    try:
        refresh = {"refreshToken": session["refreshToken"]}
        status, _ = await api.request("POST", "/api/auth/refresh", json=refresh)
        assert status == 200
        status, body = await Api(node_b.url).request("POST", "/api/auth/refresh", json=refresh)
        assert status == 401 and body["error"]["details"]["reason"] == "token_reused"
        await phone.revoked("token_reused")
        await assert_refused(api, alice, session["accessToken"])
    finally:
        await phone.close()
