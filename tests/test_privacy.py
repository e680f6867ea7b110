"""Secrets and privacy (issue 7): what the hub writes to its log at DEBUG, what REST answers
never carry, the security headers on every answer, and CORS for REST and Socket.IO."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nacl.signing
import orjson
import pytest
import pytest_asyncio
import socketio
import socketio.exceptions

from tests.support import Account, Api, HubNode, Phone, seal, start_hub_node
from tests.support.bands import create_band, create_gig
from tests.support.gateways import (
    BRAINTREE_PRIVATE_KEY,
    STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET,
    VALID_NONCE,
    FakeGateways,
)
from tests.support.module_hub import shared_hub
from tests.support.servers import Servers

PASSWORD = "correct horse battery"
WRONG_PASSWORD = "wrong horse battery"
APP_ORIGIN = "https://app.example"
EVIL_ORIGIN = "https://evil.example"
SECRET_FIELDS = ('"password"', "passwordhash", "password_hash", "token_hash", "$2b$")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    text: str

    @property
    def body(self) -> Any:
        return orjson.loads(self.text) if self.text else None


@dataclass
class Recorder:
    """REST as the app calls it, keeping every answer (status, headers, text)."""

    base_url: str
    http: aiohttp.ClientSession
    answers: list[Recorded] = field(default_factory=list)

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> Recorded:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.base_url + path, json=json, data=data, headers=sent
        ) as response:
            answer = Recorded(
                method, path, response.status, dict(response.headers), await response.text()
            )
        self.answers.append(answer)
        return answer


# What the log keeps.


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[FakeGateways]:
    gateways = await FakeGateways().start()
    try:
        yield gateways
    finally:
        await gateways.stop()


async def test_a_debug_log_holds_no_token_password_ciphertext_or_secret(
    test_env: Any, fakes: FakeGateways, tmp_path: Path
) -> None:
    node = await start_hub_node(
        test_env.hub_env(HUB_LOG_LEVEL="DEBUG", **fakes.hub_env()), tmp_path / "debug", "debug"
    )
    secrets: dict[str, str] = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "JWT secret": test_env.jwt_secret,
        "Stripe secret key": STRIPE_SECRET_KEY,
        "Stripe webhook secret": STRIPE_WEBHOOK_SECRET,
        "Braintree private key": BRAINTREE_PRIVATE_KEY,
        "PayPal nonce": VALID_NONCE,
    }
    try:
        async with aiohttp.ClientSession() as http:
            rest = Recorder(node.url, http)
            session = await run_a_session(rest, node, secrets)
        assert_no_secret_fields(rest.answers)
        await assert_stored_hashes_never_answered(test_env.database_url, session, rest.answers)
    finally:
        await node.stop()
    log = node.log()
    assert " DEBUG " in log, "the hub did not log at DEBUG"
    logged = [label for label, value in secrets.items() if value in log]
    assert not logged, f"the log holds {logged}"


async def run_a_session(rest: Recorder, node: HubNode, secrets: dict[str, str]) -> Account:
    """Register, log in (once wrongly), refresh, keys, biometric login, messages over both
    transports, a band, a gig, both payment methods, logout: every secret noted."""
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    registered = await rest.request(
        "POST", "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert registered.status == 201, registered.text
    bob_answer = await rest.request(
        "POST",
        "/api/auth/register",
        json={
            "email": f"bob-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
            "name": "B",
        },
    )
    wrong = await rest.request(
        "POST", "/api/auth/login", json={"email": email, "password": WRONG_PASSWORD}
    )
    assert wrong.status == 401
    login = await rest.request(
        "POST", "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    refreshed = await rest.request(
        "POST", "/api/auth/refresh", json={"refreshToken": login.body["refreshToken"]}
    )
    assert refreshed.status == 200, refreshed.text
    ada = Account(
        registered.body["user"]["id"],
        email,
        "Ada",
        refreshed.body["accessToken"],
        refreshed.body["refreshToken"],
    )
    bob = Account(
        bob_answer.body["user"]["id"],
        "",
        "B",
        bob_answer.body["accessToken"],
        bob_answer.body["refreshToken"],
    )
    for n, answer in enumerate((registered, bob_answer, login, refreshed)):
        secrets[f"access token {n}"] = answer.body["accessToken"]
        secrets[f"refresh token {n}"] = answer.body["refreshToken"]
    for account in (ada, bob):
        key = await rest.request(
            "PUT",
            f"/api/users/{account.id}/public-key",
            token=account.access_token,
            json={"publicKey": account.public_key_b64},
        )
        assert key.status == 200
    signer = nacl.signing.SigningKey.generate()
    key = await rest.request(
        "POST",
        "/api/auth/biometric/keys",
        token=ada.access_token,
        json={
            "publicKey": base64.b64encode(bytes(signer.verify_key)).decode(),
            "deviceName": "Ada's phone",
        },
    )
    challenge = await rest.request(
        "POST", "/api/auth/biometric/challenge", json={"keyId": key.body["keyId"]}
    )
    signature = signer.sign(base64.b64decode(challenge.body["challenge"])).signature
    secrets["biometric signature"] = base64.b64encode(signature).decode()
    biometric = await rest.request(
        "POST",
        "/api/auth/biometric",
        json={
            "challengeId": challenge.body["challengeId"],
            "signature": secrets["biometric signature"],
        },
    )
    assert biometric.status == 200, biometric.text
    secrets["biometric access token"] = biometric.body["accessToken"]
    secrets["biometric refresh token"] = biometric.body["refreshToken"]

    phone = await Phone(ada).connect(node.url)
    reader = await Phone(bob).connect(node.url)
    try:
        sealed = seal(ada, bob, "meet at the back door")
        secrets["socket ciphertext"], secrets["socket nonce"] = (
            sealed["ciphertext"],
            sealed["nonce"],
        )
        assert (
            await phone.call("message:send", {"id": str(uuid.uuid4()), "to": bob.id, **sealed})
        )["ok"]
        await reader.next("message:new")
        sealed = seal(ada, bob, "bring the cash")
        secrets["REST ciphertext"], secrets["REST nonce"] = sealed["ciphertext"], sealed["nonce"]
        sent = await rest.request(
            "POST",
            "/api/messages",
            token=ada.access_token,
            json={"id": str(uuid.uuid4()), "to": bob.id, **sealed},
        )
        assert sent.status == 201, sent.text
        assert (await reader.call("message:sync", {"after": 0}))["ok"]
        renewed = await rest.request(
            "POST", "/api/auth/refresh", json={"refreshToken": ada.refresh_token}
        )
        assert renewed.status == 200, renewed.text
        secrets["renewed access token"] = renewed.body["accessToken"]
        # session:refresh takes a newer token of the socket's own session (device).
        assert (await phone.call("session:refresh", {"token": renewed.body["accessToken"]}))["ok"]
    finally:
        await phone.close()
        await reader.close()

    api = Api(node.url)
    band = await create_band(api, ada, bob)
    gig = await create_gig(api, ada, band["id"], feeAmount=50_000)
    secrets["calendar URL token"] = band["calendarUrl"].rsplit("token=", 1)[1]
    for method, extra in (("stripe", {}), ("paypal", {"paymentMethodNonce": VALID_NONCE})):
        paid = await rest.request(
            "POST",
            f"/api/payments/{method}",
            token=bob.access_token,
            json={"gigId": gig["id"], "amount": 1_250, "currency": "EUR", **extra},
            headers={"Idempotency-Key": f"{method}-{uuid.uuid4().hex}"},
        )
        assert paid.status == 201, paid.text
        if method == "stripe":
            secrets["Stripe client secret"] = paid.body["clientSecret"]
    logout = await rest.request(
        "POST",
        "/api/auth/logout",
        token=ada.access_token,
        json={"refreshToken": ada.refresh_token},
    )
    assert logout.status == 204, logout.text
    return ada


def assert_no_secret_fields(answers: list[Recorded]) -> None:
    for answer in answers:
        lowered = answer.text.lower()
        for secret_field in SECRET_FIELDS:
            assert secret_field not in lowered, (answer.method, answer.path, answer.text)


async def assert_stored_hashes_never_answered(
    database_url: str, account: Account, answers: list[Recorded]
) -> None:
    """What the database keeps of a password and of refresh tokens never leaves it."""
    conn = await asyncpg.connect(database_url)
    try:
        password_hash = await conn.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", account.id
        )
        token_hashes = await conn.fetch(
            "SELECT * FROM refresh_tokens WHERE user_id = $1", account.id
        )
    finally:
        await conn.close()
    stored = [password_hash]
    for row in token_hashes:
        for value in row.values():
            if isinstance(value, bytes):
                stored += [value.hex(), base64.b64encode(value).decode()]
    assert len(stored) > 3
    everything = "\n".join(a.text for a in answers)
    for value in stored:
        assert value not in everything


# Headers and CORS, on one node that allows the app's web origin.


@pytest_asyncio.fixture(scope="module")
async def cors_hub(servers: Servers) -> AsyncIterator[HubNode]:
    async with shared_hub(servers, HUB_CORS_ORIGINS=f"{APP_ORIGIN}, https://admin.example") as (
        _,
        node,
    ):
        yield node


async def test_every_rest_answer_has_the_security_headers(cors_hub: HubNode) -> None:
    async with aiohttp.ClientSession() as http:
        rest = Recorder(cors_hub.url, http)
        email = f"h-{uuid.uuid4().hex[:8]}@example.com"
        registered = await rest.request(
            "POST", "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "H"}
        )
        token, refresh = registered.body["accessToken"], registered.body["refreshToken"]
        user_id = registered.body["user"]["id"]
        auth_answers = [
            registered,
            await rest.request(
                "POST", "/api/auth/login", json={"email": email, "password": PASSWORD}
            ),
            await rest.request(
                "POST", "/api/auth/login", json={"email": email, "password": "nope-nope"}
            ),
            await rest.request("POST", "/api/auth/refresh", json={"refreshToken": refresh}),
            await rest.request("POST", "/api/auth/refresh", json={"refreshToken": "garbage"}),
        ]
        band = await rest.request("POST", "/api/bands", token=token, json={"name": "Heads"})
        others = [
            await rest.request("GET", f"/api/users/{user_id}", token=token),
            await rest.request("GET", "/api/bands", token=token),
            await rest.request("GET", "/api/bands"),  # 401
            await rest.request("GET", "/api/no/such/route"),  # 404
            await rest.request("PATCH", "/api/bands", token=token),  # 405
            await rest.request(
                "POST",
                "/api/bands",
                token=token,
                data=b"{not json",
                headers={"Content-Type": "application/json"},
            ),  # 400
            await rest.request(
                "POST",
                "/api/bands",
                token=token,
                data=b"x" * (1024 * 1024 + 10),
                headers={"Content-Type": "application/json"},
            ),  # 413
            await rest.request("GET", "/healthz"),
            await rest.request("GET", "/metrics"),
            await rest.request("GET", "/api/openapi.json"),
            await rest.request("GET", "/socket.io/?EIO=4&transport=polling"),
        ]
        calendar_path = band.body["calendarUrl"].split(cors_hub.url.split("//")[1], 1)[1]
        calendar = await rest.request("GET", calendar_path)
    statuses = sorted({a.status for a in rest.answers})
    assert statuses == [200, 201, 400, 401, 404, 405, 413], statuses
    for answer in rest.answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name, "").lower() == value.lower(), (
                answer.method,
                answer.path,
                answer.status,
                answer.headers,
            )
    for answer in auth_answers + others[:7]:
        assert answer.headers.get("Cache-Control") == "no-store", (answer.path, answer.headers)
    # The calendar feed is meant to be cached by phone calendars, privately.
    assert calendar.status == 200
    assert calendar.headers["Cache-Control"] == "private, max-age=300"


async def test_cors_allows_only_the_configured_origins(cors_hub: HubNode) -> None:
    async with aiohttp.ClientSession() as http:
        rest = Recorder(cors_hub.url, http)
        allowed = await rest.request("GET", "/api/openapi.json", headers={"Origin": APP_ORIGIN})
        second = await rest.request("GET", "/healthz", headers={"Origin": "https://admin.example"})
        refused = await rest.request("GET", "/api/openapi.json", headers={"Origin": EVIL_ORIGIN})
        lookalike = await rest.request(
            "GET", "/healthz", headers={"Origin": APP_ORIGIN + ".evil.example"}
        )
        none = await rest.request("GET", "/healthz")
        error = await rest.request("GET", "/api/bands", headers={"Origin": APP_ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Origin" in allowed.headers.get("Vary", "")
    assert "Retry-After" in allowed.headers["Access-Control-Expose-Headers"]
    assert second.headers["Access-Control-Allow-Origin"] == "https://admin.example"
    for answer in (refused, lookalike, none):
        assert "Access-Control-Allow-Origin" not in answer.headers, answer.headers
    # An error answer to the app's origin is readable by the app (it must see the 401).
    assert error.status == 401
    assert error.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert all(a.headers.get("Access-Control-Allow-Origin") != "*" for a in rest.answers)


async def test_a_browser_preflight_from_the_app_origin_is_answered(cors_hub: HubNode) -> None:
    """A web app sends ``Authorization`` and JSON: the browser asks first with OPTIONS."""
    async with aiohttp.ClientSession() as http:
        rest = Recorder(cors_hub.url, http)
        asked = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        }
        allowed = await rest.request(
            "OPTIONS", "/api/bands", headers={"Origin": APP_ORIGIN, **asked}
        )
        refused = await rest.request(
            "OPTIONS", "/api/bands", headers={"Origin": EVIL_ORIGIN, **asked}
        )
    assert allowed.status in (200, 204), allowed
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    methods = allowed.headers["Access-Control-Allow-Methods"].upper()
    assert "POST" in methods and "PUT" in methods and "DELETE" in methods
    granted = allowed.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key"):
        assert header in granted
    assert "Access-Control-Allow-Origin" not in refused.headers, refused.headers
    for name, value in SECURITY_HEADERS.items():
        assert allowed.headers.get(name) == value


async def socket_connects(url: str, token: str, origin: str | None) -> bool:
    client = socketio.AsyncClient(reconnection=False)
    headers = {"Origin": origin} if origin else {}
    try:
        await client.connect(
            url,
            auth={"token": token, "device": "browser"},
            headers=headers,
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        return False
    else:
        return client.connected
    finally:
        await client.disconnect()


@pytest.mark.parametrize(
    ("origin", "connects"),
    [(None, True), (APP_ORIGIN, True), (EVIL_ORIGIN, False), ("null", False)],
)
async def test_socket_io_from_a_browser_origin_is_held_to_the_cors_list(
    cors_hub: HubNode, origin: str | None, connects: bool
) -> None:
    account = await Api(cors_hub.url).register("browser", with_key=False)
    assert await socket_connects(cors_hub.url, account.access_token, origin) is connects


async def test_without_a_cors_list_socket_io_is_same_origin_or_no_origin(hub_node: HubNode) -> None:
    account = await Api(hub_node.url).register("browser", with_key=False)
    assert await socket_connects(hub_node.url, account.access_token, None) is True
    assert await socket_connects(hub_node.url, account.access_token, hub_node.url) is True
    assert await socket_connects(hub_node.url, account.access_token, EVIL_ORIGIN) is False
    async with aiohttp.ClientSession() as http:
        async with http.get(hub_node.url + "/healthz", headers={"Origin": EVIL_ORIGIN}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
