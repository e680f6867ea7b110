"""Devices and sessions against real hubs: a session is one device, named at login or fixed
by its first socket connect; a new login of a device replaces its earlier session; refresh
keeps the session (and its ``authTime``) and forgives a retry within the grace window."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
import socketio
import socketio.exceptions

from tests.support import Api, HubNode, Phone, start_hub_node
from tests.support.clients import PASSWORD


@pytest.fixture
def api(hub_node: HubNode) -> Api:
    return Api(hub_node.url)


def unique_email() -> str:
    return f"dev-{uuid.uuid4().hex[:8]}@example.com"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def register(api: Api, email: str, device: dict[str, Any] | None = None) -> Any:
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "name": "Dee"}
    if device is not None:
        body["device"] = device
    status, answer = await api.request("POST", "/api/auth/register", json=body)
    assert status == 201, answer
    return answer


async def login(api: Api, email: str, device: dict[str, Any] | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"email": email, "password": PASSWORD}
    if device is not None:
        body["device"] = device
    return await api.request("POST", "/api/auth/login", json=body)


async def refresh(api: Api, token: str) -> tuple[int, Any]:
    return await api.request("POST", "/api/auth/refresh", json={"refreshToken": token})


async def connect_error(url: str, token: str, device: str) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        errors.append(data)

    client.on("connect_error", on_connect_error)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                url, auth={"token": token, "device": device}, transports=["websocket"]
            )
    finally:
        await client.disconnect()
    assert len(errors) == 1, errors
    return errors[0]


async def test_a_login_names_its_device_and_answers_it(api: Api) -> None:
    email = unique_email()
    first = await register(api, email, {"id": "ios.1", "name": "Dee's phone", "platform": "ios"})
    assert first["device"] == {"id": "ios.1", "name": "Dee's phone", "platform": "ios"}
    claims = claims_of(first["accessToken"])
    assert (
        isinstance(claims["sid"], str) and claims["sid"] == claims_of(first["refreshToken"])["fam"]
    )
    assert abs(claims["authTime"] - time.time() * 1000) < 60_000
    status, second = await login(api, email, {"id": "web-1"})
    assert status == 200 and second["device"] == {"id": "web-1", "name": None, "platform": "other"}
    assert claims_of(second["accessToken"])["sid"] != claims["sid"]
    status, plain = await login(api, email)
    assert status == 200 and "device" not in plain


@pytest.mark.parametrize(
    "device",
    [
        {"id": ""},
        {"id": "bad device!"},
        {"id": "x" * 65},
        {"id": "ok", "platform": "symbian"},
        {"id": "ok", "name": ""},
        {"id": "ok", "extra": 1},
        {"name": "no id"},
        "phone",
    ],
)
async def test_a_bad_device_is_refused(api: Api, device: Any) -> None:
    status, body = await api.request(
        "POST",
        "/api/auth/register",
        json={"email": unique_email(), "password": PASSWORD, "name": "D", "device": device},
    )
    assert status in (400, 413), body
    assert body["error"]["code"] in ("invalid_payload", "too_large")


async def test_a_token_without_a_session_is_refused(
    hub_node: HubNode, api: Api, test_env: Any
) -> None:
    account = await api.register("old")
    now = int(time.time())
    legacy = jwt.encode(
        {"sub": account.id, "typ": "access", "iat": now, "exp": now + 3600},
        test_env.jwt_secret,
        algorithm="HS256",
    )
    status, body = await api.request("GET", f"/api/users/{account.id}", token=legacy)
    assert status == 401 and body["error"]["details"]["reason"] == "token_invalid"
    error = await connect_error(hub_node.url, legacy, "phone")
    assert error["message"] == "unauthorized" and error["data"]["code"] == "token_invalid"


async def test_the_first_connect_binds_the_device_and_another_is_refused(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    account = await api.register("binder")
    phone = await Phone(account, "phone-1").connect(node_a.url, token=account.access_token)
    try:
        error = await connect_error(node_b.url, account.access_token, "phone-2")
        assert error["message"] == "unauthorized", error
        assert error["data"]["code"] == "device_mismatch", error
        again = await Phone(account, "phone-1").connect(node_b.url, token=account.access_token)
        await again.close()
    finally:
        await phone.close()


async def test_a_named_device_refuses_a_socket_of_another(hub_node: HubNode, api: Api) -> None:
    session = await register(api, unique_email(), {"id": "tablet"})
    error = await connect_error(hub_node.url, session["accessToken"], "phone")
    assert error["data"]["code"] == "device_mismatch", error


async def test_a_new_login_of_a_device_replaces_its_session(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    email = unique_email()
    first = await register(Api(node_a.url), email, {"id": "phone", "name": "Mine"})
    other = await login(Api(node_a.url), email, {"id": "laptop"})
    status, second = await login(Api(node_b.url), email, {"id": "phone"})
    assert status == 200 and second["device"]["name"] == "Mine", "the device stays"
    status, body = await refresh(Api(node_a.url), first["refreshToken"])
    assert status == 401, body
    error = await connect_error(node_b.url, first["accessToken"], "phone")
    assert error["data"]["code"] == "session_revoked", error
    assert (await refresh(Api(node_b.url), second["refreshToken"]))[0] == 200
    assert (await refresh(Api(node_b.url), other[1]["refreshToken"]))[0] == 200


async def test_binding_at_connect_replaces_the_devices_earlier_session(
    hub_node: HubNode, api: Api
) -> None:
    email = unique_email()
    first = await register(api, email)
    phone = await raw_connect(hub_node, first["accessToken"], "phone")
    await phone.disconnect()
    _, second = await login(api, email)
    phone = await raw_connect(hub_node, second["accessToken"], "phone")
    await phone.disconnect()
    assert (await refresh(api, first["refreshToken"]))[0] == 401
    assert (await refresh(api, second["refreshToken"]))[0] == 200


async def raw_connect(node: HubNode, token: str, device: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        node.url, auth={"token": token, "device": device}, transports=["websocket"]
    )
    return client


# Refresh: the session and its authTime stay; a retry within the grace window is forgiven.


@pytest_asyncio.fixture
async def graced(test_env: Any, tmp_path: Path) -> AsyncIterator[tuple[HubNode, HubNode]]:
    env = test_env.hub_env(REFRESH_REUSE_GRACE_SECONDS="2")
    nodes = [
        await start_hub_node(env, tmp_path / "node-a", "node-a"),
        await start_hub_node(env, tmp_path / "node-b", "node-b"),
    ]
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            await node.stop()


async def test_refresh_keeps_the_session_and_its_auth_time(api: Api) -> None:
    first = await register(api, unique_email(), {"id": "phone"})
    await asyncio.sleep(1.1)
    status, second = await refresh(api, first["refreshToken"])
    assert status == 200, second
    before, after = claims_of(first["accessToken"]), claims_of(second["accessToken"])
    assert after["sid"] == before["sid"] and after["authTime"] == before["authTime"]
    assert after["iat"] > before["iat"]


async def test_a_retry_within_the_grace_window_stays_logged_in(
    graced: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = graced
    first = await register(Api(node_a.url), unique_email(), {"id": "phone"})
    status, lost = await refresh(Api(node_a.url), first["refreshToken"])  # the answer is lost
    assert status == 200
    status, retried = await refresh(Api(node_b.url), first["refreshToken"])
    assert status == 200, retried
    assert claims_of(retried["accessToken"])["sid"] == claims_of(lost["accessToken"])["sid"]
    assert (await refresh(Api(node_a.url), retried["refreshToken"]))[0] == 200

    # After the window, presenting a spent token again is theft: the session dies.
    await asyncio.sleep(2.5)
    status, body = await refresh(Api(node_b.url), first["refreshToken"])
    assert status == 401 and body["error"]["details"]["reason"] == "token_reused", body
    assert (await refresh(Api(node_a.url), lost["refreshToken"]))[0] == 401


async def test_rotation_racing_logout_all_leaves_no_usable_token(api: Api) -> None:
    """Rotation and revocation take the session's row lock: whichever comes second sees the
    other, so a thief refreshing in a loop cannot outlive a logout of every device."""
    email = unique_email()
    await register(api, email)
    for attempt in range(4):
        _, thief = await login(api, email, {"id": f"thief-{attempt}"})
        _, owner = await login(api, email, {"id": "owner"})
        seen = [thief]

        async def refresh_loop(seen: list[Any] = seen) -> None:
            for _ in range(40):
                status, body = await refresh(api, seen[-1]["refreshToken"])
                if status != 200:
                    return
                seen.append(body)

        async def logout_all(owner: Any = owner, attempt: int = attempt) -> None:
            await asyncio.sleep(0.02 * attempt)
            status, body = await api.request(
                "POST", "/api/auth/logout", token=owner["accessToken"], json={"all": True}
            )
            assert status == 204, body

        await asyncio.gather(refresh_loop(), logout_all())
        for pair in seen:
            assert (await refresh(api, pair["refreshToken"]))[0] == 401
            status, body = await api.request(
                "GET",
                "/api/users/" + claims_of(pair["accessToken"])["sub"],
                token=pair["accessToken"],
            )
            assert status == 401 and body["error"]["code"] == "session_revoked", body
