"""``EventTable``: the one place where a socket event is parsed, limited, dispatched and
acknowledged, so every handler body is just "typed payload in, one service call, ack out".

Every client event gets an ack: ``{ok: true, ...}`` or ``{ok: false, error: {code, message}}``.
A handler sees only its ``EventContext``: who sent the event, the connection it came in on
(``CallerConnection``: presence watches and the session deadline, nothing else), and the
services its table was bound to. Each event module declares that set as a small dataclass
next to its table, so what a handler may touch is written at the top of its module:

```python
@dataclass(frozen=True, slots=True)
class PresenceEventServices:
    presence: PresenceService

events: EventTable[PresenceEventServices] = EventTable()
```

and the assembly binds it: ``dispatcher.add(presence_events.events, PresenceEventServices(...))``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict

from handlers.engineio_internals import MALFORMED_EVENT
from handlers.registry import CallerConnection, ConnectionRegistry
from hub.errors import (
    HubError,
    InvalidPayload,
    NotFound,
    RateLimited,
    TooLarge,
    UpstreamUnavailable,
    upstream_failures,
)
from hub.metrics import HubMetrics


class Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


log = logging.getLogger(__name__)

Ack = dict[str, Any]
Body = TypeVar("Body", bound=pydantic.BaseModel)
# The services one table's handlers may call (a small dataclass per event module).
Uses = TypeVar("Uses")

RATE_LIMITED = "too many events on this connection"


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def error_ack(error: HubError) -> Ack:
    return {"ok": False, "error": error.as_error()}


@dataclass(frozen=True, slots=True)
class EventContext(Generic[Uses]):
    """Everything a handler may touch."""

    services: Uses
    connection: CallerConnection
    user_id: str
    device_id: str
    conn_id: str


Handler = Callable[[EventContext[Uses], Body], Awaitable[Ack]]


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    model: type[pydantic.BaseModel]
    handler: Handler[Any, Any]


@dataclass(frozen=True, slots=True)
class BoundEvent:
    spec: EventSpec
    services: Any


class EventTable(Generic[Uses]):
    """Like aiohttp's ``RouteTableDef``: modules fill one, the assembly binds each to the
    services its handlers may call and attaches them all."""

    def __init__(self) -> None:
        self.specs: list[EventSpec] = []

    def on(
        self, name: str, model: type[Body]
    ) -> Callable[[Handler[Uses, Body]], Handler[Uses, Body]]:
        def register(fn: Handler[Uses, Body]) -> Handler[Uses, Body]:
            self.specs.append(EventSpec(name, model, fn))
            return fn

        return register


def _describe(exc: pydantic.ValidationError) -> InvalidPayload:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return InvalidPayload(f"{where}: {first['msg']}", details={"field": where})


def _too_large(exc: pydantic.ValidationError) -> bool:
    return any(e["type"] in ("string_too_long", "too_long", "bytes_too_long") for e in exc.errors())


class EventDispatcher:
    """Attaches tables to a python-socketio server with one wrapper for all events."""

    def __init__(self, connections: ConnectionRegistry, metrics: HubMetrics) -> None:
        self._connections = connections
        self._metrics = metrics
        self._events: dict[str, BoundEvent] = {}
        self._upstream_failures = upstream_failures()

    def add(self, table: EventTable[Uses], services: Uses) -> None:
        """Serve ``table``'s events, their handlers calling ``services``."""
        for spec in table.specs:
            if spec.name in self._events:
                raise ValueError(f"socket event {spec.name!r} is registered twice")
            self._events[spec.name] = BoundEvent(spec, services)

    def require_bound(self, tables: Iterable[EventTable[Any]]) -> None:
        """Refuse to start when the events served differ from those of ``tables`` (the list
        the authorization matrix walks): an event family left out of either would escape it."""
        listed = {spec.name for table in tables for spec in table.specs}
        if listed != set(self._events):
            raise ValueError(
                f"socket events bound but not listed: {sorted(set(self._events) - listed)}; "
                f"listed but not bound: {sorted(listed - set(self._events))}"
            )

    def attach(self, sio: Any) -> None:
        for name, bound in self._events.items():
            sio.on(name, self._wrapper(bound))
        sio.on(MALFORMED_EVENT, self._malformed)
        sio.on("*", self._unknown)

    def _over_budget(self, sid: str) -> bool:
        """Every event counts against the connection's budget, known or not."""
        state = self._connections.by_sid(sid)
        return state is not None and not state.bucket.take(time.monotonic())

    async def _unknown(self, event: str, sid: str, *args: Any) -> Ack:
        if self._over_budget(sid):
            return error_ack(RateLimited(RATE_LIMITED, retry_after_seconds=1))
        self._metrics.errors.labels(event="unknown", code="not_found").inc()
        return error_ack(NotFound(f"unknown event {event[:64]!r}"))

    async def _malformed(self, sid: str, reason: Any = None, *args: Any) -> Ack:
        if self._over_budget(sid):
            return error_ack(RateLimited(RATE_LIMITED, retry_after_seconds=1))
        self._metrics.errors.labels(event="malformed", code="invalid_payload").inc()
        return error_ack(InvalidPayload(str(reason)[:200]))

    def _wrapper(self, bound: BoundEvent) -> Callable[..., Awaitable[Ack]]:
        spec = bound.spec
        metrics = self._metrics
        events_counter = metrics.events.labels(event=spec.name)
        latency = metrics.ack_seconds.labels(event=spec.name)

        async def handle(sid: str, *args: Any) -> Ack:
            started = time.perf_counter()
            events_counter.inc()
            ack = await self._dispatch(bound, sid, args)
            latency.observe(time.perf_counter() - started)
            if not ack.get("ok"):
                metrics.errors.labels(event=spec.name, code=ack["error"]["code"]).inc()
            return ack

        return handle

    async def _dispatch(self, bound: BoundEvent, sid: str, args: tuple[Any, ...]) -> Ack:
        spec = bound.spec
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
                bound.services, state.caller, state.user_id, state.device_id, state.conn_id
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
