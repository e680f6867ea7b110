"""Socket authentication against a real hub: who may connect, why others are refused, and
what happens when an access token runs out on a live socket."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import jwt
import orjson
import pytest
import socketio
import socketio.exceptions

from tests.support import Account, Api, HubNode, Phone


@pytest.fixture
def api(hub_node: HubNode) -> Api:
    return Api(hub_node.url)


def mint(
    secret: str,
    user_id: str,
    *,
    typ: str = "access",
    lifetime_s: float = 3600,
    session_of: str | None = None,
) -> str:
    """A token as the hub would mint it, with our own lifetime (``exp`` is whole seconds), of
    the session of the access token ``session_of`` (else of no session there is)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "typ": typ, "iat": now, "exp": int(now + lifetime_s)}
    if typ == "access":
        claims |= {"sid": "00000000-0000-4000-8000-000000000000", "authTime": now * 1000}
        if session_of is not None:
            real = jwt.decode(session_of, options={"verify_signature": False})
            claims |= {"sid": real["sid"], "authTime": real["authTime"]}
    if typ == "refresh":
        claims["fam"] = "00000000-0000-4000-8000-000000000000"
    return jwt.encode(claims, secret, algorithm="HS256")


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token: header and claims, no signature."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def refused(url: str, auth: Any) -> Any:
    """Connect and expect a refusal; returns what ``connect_error`` carried."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        errors.append(data)

    client.on("connect_error", on_connect_error)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
        assert not client.connected
    finally:
        await client.disconnect()
    assert len(errors) == 1, errors
    return errors[0]


def assert_unauthorized(error: Any, code: str) -> None:
    assert error["message"] == "unauthorized", error
    assert error["data"]["code"] == code, error
    assert isinstance(error["data"]["message"], str) and error["data"]["message"]


async def test_a_valid_access_token_connects(hub_node: HubNode, api: Api) -> None:
    alice = await api.register("alice")
    phone = await Phone(alice).connect(hub_node.url)
    try:
        assert phone.client.connected
        ack = await phone.call("session:refresh", {"token": alice.access_token})
        assert ack["ok"] is True
    finally:
        await phone.close()


async def test_connect_without_auth_is_refused(hub_node: HubNode) -> None:
    assert_unauthorized(await refused(hub_node.url, None), "invalid_handshake")


async def test_connect_without_a_device_is_refused(hub_node: HubNode, api: Api) -> None:
    alice = await api.register("alice")
    error = await refused(hub_node.url, {"token": alice.access_token})
    assert_unauthorized(error, "invalid_handshake")
    error = await refused(hub_node.url, {"token": alice.access_token, "device": "bad device!"})
    assert_unauthorized(error, "invalid_handshake")


async def test_a_token_signed_with_another_secret_is_refused(hub_node: HubNode, api: Api) -> None:
    alice = await api.register("alice")
    forged = mint("someone-else's-secret-that-is-long-enough!!", alice.id)
    error = await refused(hub_node.url, {"token": forged, "device": "phone"})
    assert_unauthorized(error, "token_invalid")


async def test_an_alg_none_token_is_refused(hub_node: HubNode, api: Api) -> None:
    alice = await api.register("alice")
    now = int(time.time())
    token = unsigned({"sub": alice.id, "typ": "access", "iat": now, "exp": now + 3600})
    error = await refused(hub_node.url, {"token": token, "device": "phone"})
    assert_unauthorized(error, "token_invalid")


async def test_an_expired_token_is_refused(hub_node: HubNode, api: Api, test_env: Any) -> None:
    alice = await api.register("alice")
    token = mint(test_env.jwt_secret, alice.id, lifetime_s=-60)
    error = await refused(hub_node.url, {"token": token, "device": "phone"})
    assert_unauthorized(error, "token_expired")


async def test_a_refresh_token_does_not_open_a_socket(hub_node: HubNode, api: Api) -> None:
    alice = await api.register("alice")
    error = await refused(hub_node.url, {"token": alice.refresh_token, "device": "phone"})
    assert_unauthorized(error, "wrong_token_type")


async def test_a_signed_token_with_a_non_numeric_exp_is_refused_not_a_crash(
    hub_node: HubNode, api: Api, test_env: Any
) -> None:
    alice = await api.register("alice")
    token = jwt.encode(
        {"sub": alice.id, "typ": "access", "exp": "tomorrow"}, test_env.jwt_secret, "HS256"
    )
    error = await refused(hub_node.url, {"token": token, "device": "phone"})
    assert_unauthorized(error, "token_invalid")
    status, body = await api.request("GET", f"/api/users/{alice.id}", token=token)
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_garbage_in_the_token_is_refused(hub_node: HubNode) -> None:
    for token in ("not-a-jwt", 42, ""):
        error = await refused(hub_node.url, {"token": token, "device": "phone"})
        assert error["message"] == "unauthorized", (token, error)


# A token that runs out on a live socket.


class Watched:
    """A phone that also notes when the hub disconnects it."""

    def __init__(self, account: Account) -> None:
        self.phone = Phone(account)
        self.disconnected = asyncio.Event()

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        self.phone.client.on("disconnect", on_disconnect)


async def test_session_expires_then_the_socket_is_closed(
    hub_node: HubNode, api: Api, test_env: Any
) -> None:
    alice = await api.register("alice")
    watched = Watched(alice)
    short = mint(test_env.jwt_secret, alice.id, lifetime_s=2, session_of=alice.access_token)
    await watched.phone.connect(hub_node.url, token=short)
    try:
        expired = await watched.phone.next("session:expired", timeout=6)
        assert expired == {"reason": "token_expired"}
        await asyncio.wait_for(watched.disconnected.wait(), 5)
        assert not watched.phone.client.connected
    finally:
        await watched.phone.close()


async def test_session_refresh_keeps_the_socket_open(
    hub_node: HubNode, api: Api, test_env: Any
) -> None:
    alice = await api.register("alice")
    watched = Watched(alice)
    short = mint(test_env.jwt_secret, alice.id, lifetime_s=3, session_of=alice.access_token)
    await watched.phone.connect(hub_node.url, token=short)
    try:
        ack = await watched.phone.call("session:refresh", {"token": alice.access_token})
        fresh_exp = jwt.decode(alice.access_token, options={"verify_signature": False})["exp"]
        assert ack == {"ok": True, "expiresAt": fresh_exp * 1000}
        with pytest.raises(TimeoutError):
            await watched.phone.next("session:expired", timeout=4)
        assert watched.phone.client.connected and not watched.disconnected.is_set()
        assert (await watched.phone.call("message:sync", {"after": 0}))["ok"]
    finally:
        await watched.phone.close()


async def test_session_refresh_refuses_other_users_and_wrong_tokens(
    hub_node: HubNode, api: Api, test_env: Any
) -> None:
    alice, bob = await api.register_many("alice", "bob")
    phone = await Phone(alice).connect(hub_node.url)
    try:
        ack = await phone.call("session:refresh", {"token": bob.access_token})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        other_device = await alice.token_for("tablet", hub_node.url)
        ack = await phone.call("session:refresh", {"token": other_device})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", ack
        ack = await phone.call("session:refresh", {"token": alice.refresh_token})
        assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
        expired = mint(test_env.jwt_secret, alice.id, lifetime_s=-60)
        ack = await phone.call("session:refresh", {"token": expired})
        assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
        assert phone.client.connected
    finally:
        await phone.close()
