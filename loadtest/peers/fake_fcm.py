"""A local FCM for the ``push`` mix: the OAuth token endpoint and HTTP v1 ``messages:send``,
over HTTP/2 and TLS (hypercorn) as Google serves them, recording when each push arrived.

It checks what the real service checks on this path: the service account's RS256 assertion
at ``/token`` (signature, audience, issuer, scope) and the bearer token on every send (401
otherwise); it answers every valid send 200, as FCM does for a live registration token. The
kit reads what it received from ``GET /stats`` at the end of the run.

    python -m loadtest.peers.fake_fcm --port 9300 --cert ca.pem --key key.pem \
        --account-key account-public.pem --client-email hub@project.iam.gserviceaccount.com
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import orjson

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class FakeFcm:
    """The ASGI app. ``pushes`` holds ``[type, messageId | callId, conversationId, ms]`` per
    accepted send, ``ms`` being the wall-clock millisecond it arrived."""

    def __init__(self, account_public_key: bytes, client_email: str, project_id: str) -> None:
        self._public_key = account_public_key
        self._client_email = client_email
        self._send_path = f"/v1/projects/{project_id}/messages:send"
        self._access_tokens: set[str] = set()
        self.pushes: list[list[object]] = []
        self.token_requests = 0
        self.unauthorized = 0
        self.problems: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path, method = scope["path"], scope["method"]
        body = await read_body(receive)
        if path == self._send_path and method == "POST":
            await self._message(scope, body, send)
        elif path == "/token" and method == "POST":
            await self._token(body, send)
        elif path == "/stats" and method == "GET":
            await _answer(send, 200, self.stats())
        elif path == "/healthz":
            await _answer(send, 200, {"ok": True})
        else:
            await _answer(send, 404, {"error": {"code": 404, "status": "NOT_FOUND"}})

    def stats(self) -> dict[str, object]:
        return {
            "pushes": self.pushes,
            "tokenRequests": self.token_requests,
            "unauthorized": self.unauthorized,
            "problems": self.problems[:20],
        }

    async def _token(self, body: bytes, send: Send) -> None:
        self.token_requests += 1
        problem = token_request_problem(body, self._public_key, self._client_email)
        if problem is not None:
            self.problems.append(problem)
            await _answer(send, 400, {"error": "invalid_grant"})
            return
        access = "ya29." + secrets.token_urlsafe(24)
        self._access_tokens.add(access)
        answer = {"access_token": access, "expires_in": 3600, "token_type": "Bearer"}
        await _answer(send, 200, answer)

    async def _message(self, scope: dict[str, Any], body: bytes, send: Send) -> None:
        arrived_ms = int(time.time() * 1000)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("authorization", "").removeprefix("Bearer ") not in self._access_tokens:
            self.unauthorized += 1
            await _answer(send, 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            return
        try:
            message = orjson.loads(body)["message"]
            data = message.get("data", {})
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.problems.append(f"not an FCM send: {body[:200]!r}")
            await _answer(send, 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}})
            return
        if not all(isinstance(v, str) for v in data.values()):
            self.problems.append(f"FCM data values must be strings: {data}")
        self.pushes.append(
            [
                str(data.get("type", "")),
                str(data.get("messageId") or data.get("callId") or ""),
                str(data.get("conversationId", "")),
                arrived_ms,
            ]
        )
        await _answer(send, 200, {"name": f"projects/lt/messages/{secrets.token_hex(8)}"})


def token_request_problem(body: bytes, public_key: bytes, client_email: str) -> str | None:
    """What is wrong with an OAuth token request, as Google's endpoint checks it (the
    service account's RS256 assertion for the FCM scope, wherever ``token_uri`` points);
    ``None`` for a good one."""
    form = dict(urllib.parse.parse_qsl(body.decode()))
    try:
        claims = jwt.decode(
            form.get("assertion", ""),
            public_key,
            algorithms=["RS256"],
            audience=GOOGLE_TOKEN_AUDIENCE,
        )
    except jwt.PyJWTError as exc:
        return f"token assertion: {exc}"
    if form.get("grant_type") != JWT_BEARER or claims.get("iss") != client_email:
        return f"token request: {form.get('grant_type')} {claims.get('iss')}"
    if "firebase.messaging" not in str(claims.get("scope", "")):
        return f"token scope: {claims.get('scope')}"
    return None


async def read_body(receive: Receive) -> bytes:
    """An ASGI request's whole body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: object) -> None:
    raw = orjson.dumps(body)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


async def lifespan(receive: Receive, send: Send) -> None:
    """ASGI start-up and shutdown: nothing to do but say so."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve_fake(options: argparse.Namespace) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    with open(options.account_key, "rb") as key_file:
        public_key = key_file.read()
    app = FakeFcm(public_key, options.client_email, options.project)
    config = Config()
    config.bind = [f"127.0.0.1:{options.port}"]
    config.certfile, config.keyfile = options.cert, options.key
    config.accesslog = None
    # hypercorn closes a connection (GOAWAY) after 1,000 requests by default; Google keeps
    # one open far longer, and a load test should measure pushes, not reconnects.
    config.keep_alive_max_requests = 1_000_000_000
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True, help="TLS certificate (PEM)")
    parser.add_argument("--key", required=True, help="TLS private key (PEM)")
    parser.add_argument("--account-key", required=True, help="the service account's public key")
    parser.add_argument("--client-email", required=True)
    parser.add_argument("--project", default="artist-space-load")
    import uvloop

    uvloop.run(serve_fake(parser.parse_args()))


if __name__ == "__main__":
    main()
