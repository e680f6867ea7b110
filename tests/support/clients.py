"""Test helpers that talk to a hub over the wire, as a phone would."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nacl.public
import pydantic
import socketio

import hub.app  # noqa: F401  (loads every views module, so PUSHED_EVENTS is complete)
from hub.protocol.models import PUSHED_EVENTS

PASSWORD = "correct horse battery"


@dataclass
class Account:
    id: str
    email: str
    name: str
    access_token: str
    refresh_token: str
    keys: nacl.public.PrivateKey = field(default_factory=nacl.public.PrivateKey.generate)
    # A session is one device: the access token of each device this account connected with
    # (the first device takes the registration's session, the others log in for their own).
    device_tokens: dict[str, str] = field(default_factory=dict)

    async def token_for(self, device: str, base_url: str) -> str:
        if not self.device_tokens:
            self.device_tokens[device] = self.access_token
        if device not in self.device_tokens:
            body = await login_device(Api(base_url), self, device)
            self.device_tokens[device] = body["accessToken"]
        return self.device_tokens[device]

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(bytes(self.keys.public_key)).decode()


async def login_device(api: Api, account: Account, device: str, **extra: Any) -> Any:
    """Log `account` in as `device` (a new session, as a phone's login is) and return the answer.

    `extra` goes into the device object (`name`, `platform`). Fails the test unless it is 200:
    tests that expect a refused login call the route themselves.
    """
    status, body = await api.request(
        "POST",
        "/api/auth/login",
        json={"email": account.email, "password": PASSWORD, "device": {"id": device, **extra}},
    )
    assert status == 200, body
    return body


class Api:
    """The REST side, as the app calls it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base_url + path, json=json, headers=all_headers) as response,
        ):
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def register(self, name: str | None = None, *, with_key: bool = True) -> Account:
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
        status, body = await self.request(
            "POST",
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "name": name},
        )
        assert status == 201, body
        account = Account(
            body["user"]["id"], email, name, body["accessToken"], body["refreshToken"]
        )
        if with_key:
            status, body = await self.request(
                "PUT",
                f"/api/users/{account.id}/public-key",
                token=account.access_token,
                json={"publicKey": account.public_key_b64},
            )
            assert status == 200, body
        return account

    async def register_many(self, *names: str) -> list[Account]:
        return [await self.register(name) for name in names]


class Phone:
    """One device: a python-socketio client that records every event it receives."""

    def __init__(self, account: Account, device: str = "phone") -> None:
        self.account = account
        self.device = device
        self.client = socketio.AsyncClient(reconnection=False)
        self._queues: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.misshapen: list[str] = []
        self.client.on("*", self._record)

    async def _record(self, event: str, *args: Any) -> None:
        payload = args[0] if args else None
        problem = shape_problem(event, payload)
        if problem is not None:
            self.misshapen.append(problem)
        await self._queues[event].put(payload)

    async def connect(self, url: str, token: str | None = None) -> Phone:
        await self.client.connect(
            url,
            auth={
                "token": token or await self.account.token_for(self.device, url),
                "device": self.device,
            },
            transports=["websocket"],
            wait_timeout=10,
        )
        return self

    async def call(self, event: str, payload: Any = None, timeout: float = 10) -> Any:
        return await self.client.call(event, payload, timeout=timeout)

    async def next(self, event: str, timeout: float = 5) -> Any:
        payload = await asyncio.wait_for(self._queues[event].get(), timeout)
        assert not self.misshapen, self.misshapen
        return payload

    def pending(self, event: str) -> int:
        return self._queues[event].qsize()

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()
        assert not self.misshapen, self.misshapen


def shape_problem(event: str, payload: Any) -> str | None:
    """Why a pushed event does not match its model in ``PUSHED_EVENTS``, or None."""
    model = PUSHED_EVENTS.get(event)
    if model is None:
        return f"{event}: the hub pushed an event that has no model (hub.protocol.models.pushed)"
    try:
        model.model_validate(payload)
    except pydantic.ValidationError as exc:
        return f"{event}: {exc.errors(include_url=False)[:3]} in {payload!r:.300}"
    return None


def seal(sender: Account, recipient: Account, text: str) -> dict[str, str]:
    """NaCl box, as TweetNaCl does it in the app: fresh 24-byte nonce, ciphertext, base64."""
    box = nacl.public.Box(sender.keys, recipient.keys.public_key)
    nonce = os.urandom(24)
    ciphertext = box.encrypt(text.encode(), nonce).ciphertext
    return {
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "nonce": base64.b64encode(nonce).decode(),
    }


def open_box(reader: Account, peer_public_b64: str, message: dict[str, Any]) -> str:
    box = nacl.public.Box(reader.keys, nacl.public.PublicKey(base64.b64decode(peer_public_b64)))
    plain = box.decrypt(base64.b64decode(message["ciphertext"]), base64.b64decode(message["nonce"]))
    return plain.decode()
