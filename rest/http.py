"""What every route shares: JSON bodies through pydantic, bearer auth, the error middleware."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson
import pydantic
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import (
    BaseModel,
    ConfigDict,
)
from pydantic_core import PydanticCustomError

from hub.accounts.tokens import AccessClaims
from hub.errors import (
    HubError,
    InvalidPayload,
    NotAuthenticated,
    NotFound,
    RateLimited,
    SessionRevoked,
    TooLarge,
    UpstreamUnavailable,
    upstream_failures,
)
from hub.protocol.fields import (
    parse_uuid,
)
from rest.keys import API_LIMIT, API_LIMITER, CORS_ORIGINS, SERVICES, TRUSTED_PROXIES


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Query(BaseModel):
    """Query strings are text: numbers are parsed (lax), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
Model = TypeVar("Model", bound=pydantic.BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where current_claims keeps the caller's token claims once they were checked.
CLAIMS = "hub.claims"
# Set by the middleware when the bearer token's session was revoked.
REVOKED = "hub.revoked"
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})
# Webhooks come from a few servers' IPs, are signed, and are retried if dropped: not limited.
UNLIMITED_PREFIXES = ("/api/livekit/webhook/", "/api/payments/webhooks/")
# What a browser app on an origin of HUB_CORS_ORIGINS may send (answered to its preflight).
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_REQUEST_HEADERS = "Authorization, Content-Type, Idempotency-Key"
# What aiohttp's form parser raises on a body it cannot read: multipart without a boundary or
# with a broken part, text that does not decode, an unknown charset or transfer encoding.
UNREADABLE_FORM = (ValueError, LookupError, RuntimeError, HttpProcessingError)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(error: HubError, headers: dict[str, str] | None = None) -> web.Response:
    response = json_response({"error": error.as_error()}, status=error.http_status)
    if headers:
        response.headers.update(headers)
    return response


def _describe(exc: pydantic.ValidationError) -> HubError:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    if first["type"] in ("too_long", "string_too_long", "bytes_too_long"):
        return TooLarge(f"{where}: {first['msg']}", details={"field": where})
    return InvalidPayload(f"{where}: {first['msg']}", details={"field": where})


def _refuse_nul(value: Any) -> None:
    """PostgreSQL text cannot hold U+0000: refuse it up front rather than fail at the INSERT."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidPayload("text must not contain U+0000")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key)
            _refuse_nul(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item)


async def read_body(request: web.Request, model: type[Model]) -> Model:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TooLarge(f"the body may be at most {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise InvalidPayload("the body must be JSON") from None
    if not isinstance(data, dict):
        raise InvalidPayload("the body must be a JSON object")
    _refuse_nul(data)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _describe(exc) from None


async def read_form(request: web.Request) -> Mapping[str, object]:
    """The body's form fields (urlencoded or multipart). A body that does not parse as a form
    is the sender's mistake, 400 ``invalid_payload``; only a body of another content type
    reads as no fields."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TooLarge(f"the body may be at most {MAX_BODY_BYTES} bytes")
    try:
        return await request.post()
    except UNREADABLE_FORM:
        raise InvalidPayload(
            "the body must be a form: application/x-www-form-urlencoded or multipart/form-data"
        ) from None


def read_query(request: web.Request, model: type[Model]) -> Model:
    query = dict(request.query)
    _refuse_nul(query)
    try:
        return model.model_validate(query)
    except pydantic.ValidationError as exc:
        raise _describe(exc) from None


def path_uuid(request: web.Request, name: str) -> str:
    """A UUID from the route's path; a malformed one is the client's mistake (400)."""
    try:
        return parse_uuid(request.match_info[name])
    except (ValueError, PydanticCustomError):
        raise InvalidPayload(f"{name} must be a UUID", details={"field": name}) from None


def current_claims(request: web.Request) -> AccessClaims:
    """The claims of a valid access token in ``Authorization: Bearer``, or 401."""
    if request.get(REVOKED):
        raise SessionRevoked("this session was closed; log in again")
    cached = request.get(CLAIMS)
    if isinstance(cached, AccessClaims):
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send Authorization: Bearer <accessToken>")
    claims = request.app[SERVICES].tokens.verify_access(token.strip())
    request[CLAIMS] = claims
    return claims


def current_user(request: web.Request) -> str:
    """The user id of a valid access token in ``Authorization: Bearer``, or 401."""
    return current_claims(request).user_id


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def client_ip(request: web.Request) -> str:
    """The client's address (see ``client_address``): what every per-IP limit counts."""
    return client_address(
        request.remote, request.headers.get("X-Forwarded-For"), request.app[TRUSTED_PROXIES]
    )


def client_address(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy and sent
    ``X-Forwarded-For``; then the rightmost address in it that is not a trusted proxy (the
    one the first trusted proxy saw). A malformed hop stops the walk at the hop after it."""
    if not peer:
        return "unknown"
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    chosen = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return chosen
        chosen = str(address)
        if not any(address in network for network in trusted):
            return chosen
    return chosen


def _trusted(peer: str, trusted: Networks) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def trusted_networks(entries: tuple[str, ...]) -> Networks:
    """``TRUSTED_PROXIES`` entries (addresses or CIDRs) as networks; a bad one is refused."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _bearer_claims(request: web.Request) -> AccessClaims | None:
    """The claims of the request's bearer token when it is valid (kept for current_claims)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = request.app[SERVICES].tokens.verify_access(token.strip())
    except NotAuthenticated:
        return None
    request[CLAIMS] = claims
    return claims


def rate_subject(request: web.Request) -> str:
    """Whom a request counts against: its user when it carries a valid access token (so
    people behind one NAT do not share a budget), else its IP (a bad token counts there)."""
    claims = _bearer_claims(request)
    if claims is not None:
        return "user:" + claims.user_id
    return "ip:" + client_ip(request)


async def _check_revocation(request: web.Request) -> None:
    """One Redis round trip per request with a valid bearer token: is its session revoked?
    A route that needs the caller then answers 401 ``session_revoked``."""
    claims = request.get(CLAIMS)
    if not isinstance(claims, AccessClaims):
        claims = _bearer_claims(request)
    if claims is not None and await request.app[SERVICES].sessions.is_revoked(claims):
        request[REVOKED] = True


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place HubErrors become JSON errors; anything unexpected is ``internal``."""
    services = request.app[SERVICES]
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    try:
        limit = request.app[API_LIMIT]
        if (
            limit is not None
            and request.path not in UNLIMITED_PATHS
            and not request.path.startswith(UNLIMITED_PREFIXES)
        ):
            await request.app[API_LIMITER].check(limit, rate_subject(request), "requests")
        await _check_revocation(request)
        response = await handler(request)
    except RateLimited as exc:
        response = error_response(exc, {"Retry-After": str(exc.retry_after_seconds)})
    except HubError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status == 404:
            response = error_response(NotFound("no such route"))
        elif exc.status == 405:
            response = json_response(
                {"error": {"code": "method_not_allowed", "message": "method not allowed"}}, 405
            )
        elif exc.status == 413:
            response = error_response(TooLarge("the body is too large"))
        else:
            raise
    except upstream_failures():
        log.warning("%s %s: storage unavailable", request.method, request.path, exc_info=True)
        response = error_response(UpstreamUnavailable("storage is unavailable; retry shortly"))
    except Exception:
        request_id = uuid.uuid4().hex[:12]
        log.exception("%s %s failed (request %s)", request.method, route_name, request_id)
        response = error_response(HubError(f"internal error (request {request_id})"))
    services.metrics.http_requests.labels(route=route_name, status=str(response.status)).inc()
    return response


def _preflight() -> web.Response:
    """A browser asks before it sends a bearer token or JSON from another origin."""
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
            "Access-Control-Max-Age": "600",
        },
    )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = bool(origin) and origin in request.app[CORS_ORIGINS]
    if (
        allowed
        and request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
        and not request.path.startswith("/socket.io")  # Engine.IO answers its own
    ):
        response: web.StreamResponse = _preflight()
    else:
        response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    if allowed and origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers["Vary"] = "Origin"
    return response
