"""``EventTable``: the one place where a socket event is parsed, limited, dispatched and
acknowledged, so every handler body is just "typed payload in, one service call, ack out".

Every client event gets an ack: ``{ok: true, ...}`` or ``{ok: false, error: {code, message}}``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict
from socketio import packet

from hub.errors import (
    HubError,
    InvalidPayload,
    NotFound,
    RateLimited,
    TooLarge,
    UpstreamUnavailable,
    upstream_failures,
)
from hub.services import Services


class Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


if TYPE_CHECKING:
    from handlers.registry import ConnectionRegistry

log = logging.getLogger(__name__)

Ack = dict[str, Any]
Body = TypeVar("Body", bound=pydantic.BaseModel)

# What a client event that is not ``["name", ...args]`` becomes (see ``ClientPacket``); the
# NUL keeps it apart from any name a client could mean.
MALFORMED_EVENT = "\x00malformed"
# Names python-socketio would hand to the connect, disconnect or catch-all handler as if
# the server had called them.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "*", MALFORMED_EVENT})
RATE_LIMITED = "too many events on this connection"


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def error_ack(error: HubError) -> Ack:
    return {"ok": False, "error": error.as_error()}


@dataclass(frozen=True, slots=True)
class EventContext:
    services: Services
    connections: ConnectionRegistry
    sid: str
    user_id: str
    device_id: str
    conn_id: str


Handler = Callable[[EventContext, Any], Awaitable[Ack]]


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    model: type[pydantic.BaseModel]
    handler: Handler


class EventTable:
    """Like aiohttp's ``RouteTableDef``: modules fill one, ``build_app`` attaches them all."""

    def __init__(self) -> None:
        self.specs: list[EventSpec] = []

    def on(
        self, name: str, model: type[Body]
    ) -> Callable[[Callable[[EventContext, Body], Awaitable[Ack]]], Handler]:
        def register(fn: Callable[[EventContext, Body], Awaitable[Ack]]) -> Handler:
            self.specs.append(EventSpec(name, model, fn))
            return fn

        return register


def _describe(exc: pydantic.ValidationError) -> InvalidPayload:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return InvalidPayload(f"{where}: {first['msg']}", details={"field": where})


def _too_large(exc: pydantic.ValidationError) -> bool:
    return any(e["type"] in ("string_too_long", "too_long", "bytes_too_long") for e in exc.errors())


def _malformed_reason(data: Any) -> str | None:
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        return 'an event is ["name", payload]'
    if data[0] in RESERVED_EVENTS:
        return f"{data[0][:64]!r} is not an event a client may send"
    return None


# What a client may send; CONNECT_ERROR and unknown types are the server's or nobody's.
CLIENT_PACKET_TYPES = frozenset(
    {
        packet.CONNECT,
        packet.DISCONNECT,
        packet.EVENT,
        packet.ACK,
        packet.BINARY_EVENT,
        packet.BINARY_ACK,
    }
)


class ClientPacket(packet.Packet):  # type: ignore[misc]
    """Socket.IO packets as the hub reads them. A client event that is not
    ``["name", ...args]`` in JSON (broken or nested over orjson's 1,024 levels, no name, a
    reserved name such as ``disconnect``) still carries its ack id: it becomes
    ``[MALFORMED_EVENT, reason]``, which the dispatcher answers ``invalid_payload``, instead
    of being dropped unanswered (or unregistering the connection, for ``disconnect``).
    Any other packet that does not parse becomes the same (unanswered without an ack id), and
    a CONNECT whose auth does not parse is a connect without auth (refused as such): garbage
    from a client never reaches python-socketio as a traceback in the log."""

    packet_type: int
    data: Any

    def decode(self, encoded_packet: str | bytes) -> int:
        try:
            attachments: int = super().decode(encoded_packet) or 0
        except ValueError:
            if self.packet_type == packet.CONNECT:
                self.data = None
            else:
                self._malformed("the packet is not JSON, or nested too deeply")
            return 0
        if self.packet_type not in CLIENT_PACKET_TYPES:
            self._malformed("not a packet a client may send")
            return 0
        if self.packet_type in (packet.EVENT, packet.BINARY_EVENT):
            reason = _malformed_reason(self.data)
            if reason is not None:
                self.data = [MALFORMED_EVENT, reason]
        return attachments

    def _malformed(self, reason: str) -> None:
        self.packet_type = packet.EVENT
        self.data = [MALFORMED_EVENT, reason]


class EventDispatcher:
    """Attaches tables to a python-socketio server with one wrapper for all events."""

    def __init__(self, services: Services, connections: ConnectionRegistry) -> None:
        self._services = services
        self._connections = connections
        self._specs: dict[str, EventSpec] = {}
        self._upstream_failures = upstream_failures()

    def add(self, table: EventTable) -> None:
        for spec in table.specs:
            if spec.name in self._specs:
                raise ValueError(f"socket event {spec.name!r} is registered twice")
            self._specs[spec.name] = spec

    @property
    def event_names(self) -> list[str]:
        return sorted(self._specs)

    def attach(self, sio: Any) -> None:
        for name, spec in self._specs.items():
            sio.on(name, self._wrapper(spec))
        sio.on(MALFORMED_EVENT, self._malformed)
        sio.on("*", self._unknown)

    def _over_budget(self, sid: str) -> bool:
        """Every event counts against the connection's budget, known or not."""
        state = self._connections.by_sid(sid)
        return state is not None and not state.bucket.take(time.monotonic())

    async def _unknown(self, event: str, sid: str, *args: Any) -> Ack:
        if self._over_budget(sid):
            return error_ack(RateLimited(RATE_LIMITED, retry_after_seconds=1))
        self._services.metrics.errors.labels(event="unknown", code="not_found").inc()
        return error_ack(NotFound(f"unknown event {event[:64]!r}"))

    async def _malformed(self, sid: str, reason: Any = None, *args: Any) -> Ack:
        if self._over_budget(sid):
            return error_ack(RateLimited(RATE_LIMITED, retry_after_seconds=1))
        self._services.metrics.errors.labels(event="malformed", code="invalid_payload").inc()
        return error_ack(InvalidPayload(str(reason)[:200]))

    def _wrapper(self, spec: EventSpec) -> Callable[..., Awaitable[Ack]]:
        metrics = self._services.metrics
        events_counter = metrics.events.labels(event=spec.name)
        latency = metrics.ack_seconds.labels(event=spec.name)

        async def handle(sid: str, *args: Any) -> Ack:
            started = time.perf_counter()
            events_counter.inc()
            ack = await self._dispatch(spec, sid, args)
            latency.observe(time.perf_counter() - started)
            if not ack.get("ok"):
                metrics.errors.labels(event=spec.name, code=ack["error"]["code"]).inc()
            return ack

        return handle

    async def _dispatch(self, spec: EventSpec, sid: str, args: tuple[Any, ...]) -> Ack:
        state = self._connections.by_sid(sid)
        if state is None:
            return error_ack(HubError("connection is not registered"))
        try:
            if not state.bucket.take(time.monotonic()):
                raise RateLimited(RATE_LIMITED, retry_after_seconds=1)
            if len(args) > 1:
                raise InvalidPayload("send one object as the payload")
            raw = args[0] if args else {}
            if not isinstance(raw, dict):
                raise InvalidPayload("the payload must be an object")
            try:
                body = spec.model.model_validate(raw)
            except pydantic.ValidationError as exc:
                if _too_large(exc):
                    raise TooLarge(_describe(exc).message) from None
                raise _describe(exc) from None
            ctx = EventContext(
                self._services,
                self._connections,
                sid,
                state.user_id,
                state.device_id,
                state.conn_id,
            )
            return await spec.handler(ctx, body)
        except HubError as exc:
            return error_ack(exc)
        except self._upstream_failures:
            log.warning("socket event %s: storage unavailable", spec.name, exc_info=True)
            return error_ack(
                UpstreamUnavailable("storage is unavailable; nothing was stored, retry")
            )
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("socket event %s failed (request %s)", spec.name, request_id)
            return error_ack(HubError(f"internal error (request {request_id})"))
