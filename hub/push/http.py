"""The providers' HTTP client: httpcore's connection pool, without httpx on top.

Both providers need the same few things of HTTP: one multiplexed HTTP/2 connection per
origin (chosen by ALPN; HTTP/1.1 only where a server offers nothing else), TLS with our
trust (``PUSH_CA_FILE``), timeouts, and the whole answer read. httpcore is the pool httpx
itself runs on; httpx's models, auth and redirect layers above it cost more CPU than the
request: measured on 2026-12-04 (loopback, TLS, 64 requests in flight, against the load
test's fake FCM), httpx's ``AsyncClient`` spent 1.83 ms of CPU per HTTP/2 request and
httpcore's pool 0.94 ms. A node that relays messages and sends a few hundred pushes a
second saves a fifth of a core with it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import orjson

# Every way a request can end without an HTTP answer: the worker retries those.
NO_ANSWER: tuple[type[Exception], ...] = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    OSError,
    ssl.SSLError,
)


class NoAnswer(Exception):
    """The provider gave no HTTP answer (refused, reset, timed out, went away)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ``None`` when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class ProviderHttp:
    def __init__(
        self, context: ssl.SSLContext, timeout_seconds: float, max_connections: int
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, http1=True, http2=True, max_connections=max_connections
        )
        self._timeouts = {
            "connect": timeout_seconds,
            "read": timeout_seconds,
            "write": timeout_seconds,
            "pool": timeout_seconds,
        }

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        """Raises ``NoAnswer`` when there was no HTTP answer at all."""
        try:
            response = await self._pool.request(
                "POST",
                url,
                headers=list(headers.items()),
                content=body,
                extensions={"timeout": self._timeouts},
            )
        except NO_ANSWER as exc:
            raise NoAnswer(type(exc).__name__) from exc
        answer_headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers
        }
        return HttpAnswer(response.status, answer_headers, response.content)

    async def close(self) -> None:
        await self._pool.aclose()
