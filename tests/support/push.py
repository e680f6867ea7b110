"""Local fakes of APNs and FCM that speak their real protocols, and hub nodes pointed at them.

Fake APNs: HTTP/2 over TLS (hypercorn; a self-signed certificate made at test time and
trusted through ``PUSH_CA_FILE``). It verifies the ES256 provider token with the key's
public half, the topic, push type, priority, expiration and payload size, records every
request, and can be told to answer 410, 400 ``BadDeviceToken``, 503 n times, 429 with
``Retry-After``, or to hold a request unanswered. Fake FCM: the OAuth token endpoint (it
verifies the service account's RS256 assertion) and ``messages:send`` (it verifies the
bearer token); it can answer ``UNREGISTERED``. Every key is generated here, never committed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config

from loadtest.peers.fake_fcm import lifespan, read_body, token_request_problem
from loadtest.peers.tls import make_tls_files, write_service_account
from loadtest.peers.tls import pem_private as _pem_private
from loadtest.peers.tls import pem_public as _pem_public
from tests.support.calls import livekit_env
from tests.support.hub_nodes import HubNode, free_port, start_hub_node

TOPIC = "space.artist.app"
KEY_ID = "ABC123DEFG"
TEAM_ID = "TEAM123456"
PROJECT_ID = "artist-space-test"
CLIENT_EMAIL = f"hub@{PROJECT_ID}.iam.gserviceaccount.com"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def _answer(
    send: Send, status: int, body: Any = None, headers: dict[str, str] | None = None
) -> None:
    raw = b"" if body is None else json.dumps(body).encode()
    wire = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if body is not None:
        wire.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": wire})
    await send({"type": "http.response.body", "body": raw})


@dataclass
class Scripted:
    """The next answers, in order: (status, reason, Retry-After)."""

    answers: list[tuple[int, str, str | None]] = field(default_factory=list)

    def next(self) -> tuple[int, str, str | None] | None:
        return self.answers.pop(0) if self.answers else None


@dataclass
class ApnsRequest:
    token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    raw: bytes
    http_version: str
    provider_token: str
    status: int = 0


class FakeApns:
    def __init__(self, public_key_pem: bytes) -> None:
        self._public_key = public_key_pem
        self.received: list[ApnsRequest] = []
        self.scripted = Scripted()
        self.token_answers: dict[str, tuple[int, str]] = {}
        self.hold_next = 0  # this many requests are never answered
        self.problems: list[str] = []
        self._changed = asyncio.Condition()

    @property
    def delivered(self) -> list[ApnsRequest]:
        return [r for r in self.received if r.status == 200]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _note(self, request: ApnsRequest) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _check(self, headers: dict[str, str], body: bytes) -> tuple[int, str] | None:
        """Apple's checks, as far as the hub can get them wrong."""
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return 403, "MissingProviderToken"
        try:
            token = auth.removeprefix("bearer ")
            claims = jwt.decode(token, self._public_key, algorithms=["ES256"])
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        if header.get("kid") != KEY_ID or claims.get("iss") != TEAM_ID:
            return 403, "InvalidProviderToken"
        if not time.time() - 3600 < claims.get("iat", 0) <= time.time() + 60:
            return 403, "ExpiredProviderToken"
        push_type = headers.get("apns-push-type")
        if push_type not in ("alert", "background", "voip"):
            return 400, "InvalidPushType"
        expected_topic = f"{TOPIC}.voip" if push_type == "voip" else TOPIC
        if headers.get("apns-topic") != expected_topic:
            return 400, "DeviceTokenNotForTopic" if headers.get("apns-topic") else "MissingTopic"
        priority = headers.get("apns-priority")
        if priority != ("5" if push_type == "background" else "10"):
            return 400, "BadPriority"
        if not headers.get("apns-expiration", "").isdigit():
            return 400, "BadExpirationDate"
        if len(body) > (5120 if push_type == "voip" else 4096):
            return 413, "PayloadTooLarge"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        if scope["method"] != "POST" or not path.startswith("/3/device/"):
            await _answer(send, 404, {"reason": "BadPath"})
            return
        token = path.removeprefix("/3/device/")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        request = ApnsRequest(
            token, headers, payload, body, scope["http_version"], headers.get("authorization", "")
        )
        self.received.append(request)
        if scope["http_version"] != "2":
            self.problems.append(f"APNs request over HTTP/{scope['http_version']}")
        refused = self._check(headers, body)
        if refused is not None:
            self.problems.append(f"{refused[1]}: {headers}")
        if self.hold_next > 0:
            self.hold_next -= 1
            await self._note(request)
            await asyncio.Event().wait()  # never answered: the sender dies first
        status, reason, retry_after = 200, "", None
        if refused is not None:
            status, reason = refused
        elif token in self.token_answers:
            status, reason = self.token_answers[token]
        elif (scripted := self.scripted.next()) is not None:
            status, reason, retry_after = scripted
        request.status = status
        await self._note(request)
        if status == 200:
            await _answer(send, 200, None, {"apns-id": secrets.token_hex(16)})
        else:
            extra = {"retry-after": retry_after} if retry_after else {}
            await _answer(send, status, {"reason": reason}, extra)


@dataclass
class FcmRequest:
    message: dict[str, Any]
    status: int = 0


class FakeFcm:
    def __init__(self, public_key_pem: bytes) -> None:
        self._public_key = public_key_pem
        self.access_tokens: set[str] = set()
        self.token_requests = 0
        self.received: list[FcmRequest] = []
        self.scripted = Scripted()
        self.unregistered: set[str] = set()
        self.problems: list[str] = []
        self._changed = asyncio.Condition()

    @property
    def delivered(self) -> list[FcmRequest]:
        return [r for r in self.received if r.status == 200]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _token(self, body: bytes, send: Send) -> None:
        self.token_requests += 1
        problem = token_request_problem(body, self._public_key, CLIENT_EMAIL)
        if problem is not None:
            self.problems.append(problem)
            await _answer(send, 400, {"error": "invalid_grant"})
            return
        access = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens.add(access)
        await _answer(
            send, 200, {"access_token": access, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        path = scope["path"]
        if path == "/token" and scope["method"] == "POST":
            await self._token(body, send)
            return
        if path != f"/v1/projects/{PROJECT_ID}/messages:send" or scope["method"] != "POST":
            await _answer(send, 404, {"error": {"code": 404, "status": "NOT_FOUND"}})
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("authorization", "").removeprefix("Bearer ") not in self.access_tokens:
            await _answer(send, 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            return
        message = json.loads(body).get("message", {})
        request = FcmRequest(message)
        self.received.append(request)
        if not all(isinstance(v, str) for v in message.get("data", {}).values()):
            self.problems.append(f"FCM data values must be strings: {message}")
        status, reason, retry_after = 200, "", None
        if message.get("token") in self.unregistered:
            status, reason = 404, "UNREGISTERED"
        elif (scripted := self.scripted.next()) is not None:
            status, reason, retry_after = scripted
        request.status = status
        async with self._changed:
            self._changed.notify_all()
        if status == 200:
            await _answer(
                send, 200, {"name": f"projects/{PROJECT_ID}/messages/{secrets.token_hex(8)}"}
            )
            return
        error = {
            "code": status,
            "status": "NOT_FOUND" if reason == "UNREGISTERED" else "UNAVAILABLE",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": reason,
                }
            ],
        }
        await _answer(
            send, status, {"error": error}, {"retry-after": retry_after} if retry_after else {}
        )


async def serve_tls(app: Any, cert: Path, key: Path) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Serve ``app`` over TLS (h2 and http/1.1 by ALPN) on a free loopback port."""
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(cert), str(key)
    config.accesslog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            if time.monotonic() > deadline or task.done():
                raise
            await asyncio.sleep(0.05)

    async def close() -> None:
        stop.set()
        await asyncio.wait_for(task, 10)

    return port, close


@dataclass
class PushFakes:
    apns: FakeApns
    fcm: FakeFcm
    env: dict[str, str]

    @property
    def problems(self) -> list[str]:
        return self.apns.problems + self.fcm.problems


@pytest_asyncio.fixture
async def push_fakes(tmp_path: Path) -> AsyncIterator[PushFakes]:
    folder = tmp_path / "push-keys"
    folder.mkdir()
    cert, key = make_tls_files(folder)
    apns_key = ec.generate_private_key(ec.SECP256R1())
    key_file = folder / f"AuthKey_{KEY_ID}.p8"
    key_file.write_bytes(_pem_private(apns_key))
    apns = FakeApns(_pem_public(apns_key))
    apns_port, stop_apns = await serve_tls(apns, cert, key)
    account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fcm = FakeFcm(_pem_public(account_key))
    fcm_port, stop_fcm = await serve_tls(fcm, cert, key)
    token_uri = f"https://127.0.0.1:{fcm_port}/token"
    credentials = write_service_account(
        folder / "service-account.json", account_key, PROJECT_ID, CLIENT_EMAIL, token_uri
    )
    env = {
        "APNS_KEY_FILE": str(key_file),
        "APNS_KEY_ID": KEY_ID,
        "APNS_TEAM_ID": TEAM_ID,
        "APNS_TOPIC": TOPIC,
        "APNS_URL": f"https://127.0.0.1:{apns_port}",
        "FCM_CREDENTIALS_FILE": str(credentials),
        "FCM_URL": f"https://127.0.0.1:{fcm_port}",
        "PUSH_CA_FILE": str(cert),
        "PUSH_RETRY_BASE_MS": "100",
    }
    try:
        yield PushFakes(apns, fcm, env)
    finally:
        await asyncio.gather(stop_apns(), stop_fcm())


StartNodes = Callable[..., Awaitable[list[HubNode]]]


@pytest_asyncio.fixture
async def push_nodes(
    test_env: Any, tmp_path: Path, push_fakes: PushFakes, fake_livekit: Any
) -> AsyncIterator[StartNodes]:
    """``await push_nodes(count=2, **env)``: hub nodes whose providers are the local fakes."""
    started: list[HubNode] = []

    async def start(count: int = 2, **extra: str) -> list[HubNode]:
        env = test_env.hub_env(
            DEVICE_TTL_SECONDS="3", **livekit_env(fake_livekit), **push_fakes.env, **extra
        )
        names = [f"node-{chr(ord('a') + len(started) + i)}" for i in range(count)]
        nodes = await asyncio.gather(*(start_hub_node(env, tmp_path / n, n) for n in names))
        started.extend(nodes)
        return list(nodes)

    try:
        yield start
    finally:
        await asyncio.gather(*(node.stop() for node in started))
