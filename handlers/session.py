"""Connect, disconnect and the life of a socket's session.

The JWT is checked at connect; a missing, forged or expired token is refused with a
``connect_error`` whose message is ``unauthorized`` and whose ``data.code`` says why. When
the access token runs out on a live socket the hub emits ``session:expired`` and
disconnects, unless the client sent a newer token with ``session:refresh`` first.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import Field
from socketio.exceptions import ConnectionRefusedError as RefuseConnection

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from handlers.engineio_internals import EngineSockets
from handlers.registry import ConnectionRegistry, ConnectionState
from hub.accounts.sessions import SessionService
from hub.accounts.tokens import TokenService
from hub.clock import Clock
from hub.errors import Forbidden, HubError, NotAuthenticated, SessionRevoked, upstream_failures
from hub.metrics import HubMetrics
from hub.presence.service import PresenceService
from hub.protocol.fields import MAX_DEVICE_ID
from hub.protocol.session_events import session_expired
from hub.rate_limits import TokenBucket


class RefreshSession(Payload):
    token: str = Field(min_length=1, max_length=4096)


class Handshake(Payload):
    """The ``auth`` object of the Socket.IO connect."""

    token: str = Field(min_length=1, max_length=4096)
    device: str = Field(min_length=1, max_length=MAX_DEVICE_ID, pattern=r"^[A-Za-z0-9._:-]+$")


@dataclass(frozen=True, slots=True)
class EventBudget:
    """How many events one connection may send: a token bucket per socket."""

    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class SessionEventServices:
    """What the ``session:*`` handlers may call."""

    tokens: TokenService
    sessions: SessionService


log = logging.getLogger(__name__)

events: EventTable[SessionEventServices] = EventTable()


def _refuse(message: str, code: str, detail: str) -> RefuseConnection:
    return RefuseConnection(message, {"code": code, "message": detail})


class SocketSessions:
    """Opens a socket's session at connect (token checked, device registered with
    presence), ends it at disconnect, and when its token runs out."""

    def __init__(
        self,
        sio: Any,
        connections: ConnectionRegistry,
        *,
        tokens: TokenService,
        sessions: SessionService,
        presence: PresenceService,
        metrics: HubMetrics,
        clock: Clock,
        budget: EventBudget,
    ) -> None:
        self._sio = sio
        self._sockets = EngineSockets(sio)
        self._connections = connections
        self._tokens = tokens
        self._sessions = sessions
        self._presence = presence
        self._metrics = metrics
        self._clock = clock
        self._budget = budget
        self._upstream_failures = upstream_failures()
        # The loop keeps only weak references to tasks: hold each expiry until it finishes.
        self._expiring: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        self._sio.on("connect", self.connect)
        self._sio.on("disconnect", self.disconnect)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        metrics = self._metrics
        try:
            handshake = Handshake.model_validate(auth if isinstance(auth, dict) else {})
        except pydantic.ValidationError:
            metrics.connects.labels(outcome="unauthorized").inc()
            raise _refuse(
                "unauthorized", "invalid_handshake", "connect with auth: {token, device}"
            ) from None
        try:
            claims = self._tokens.verify_access(handshake.token)
        except NotAuthenticated as exc:
            metrics.connects.labels(outcome="unauthorized").inc()
            reason = (exc.details or {}).get("reason", "token_invalid")
            raise _refuse("unauthorized", reason, exc.message) from None
        conn_id = uuid.uuid4().hex
        try:
            await self._sessions.bind_device(claims, handshake.device)
            await self._presence.connect(claims.user_id, handshake.device, conn_id)
        except NotAuthenticated as exc:
            reason = (exc.details or {}).get("reason", exc.code)
            metrics.connects.labels(outcome=reason).inc()
            raise _refuse("unauthorized", reason, exc.message) from None
        except HubError as exc:
            metrics.connects.labels(outcome=exc.code).inc()
            raise _refuse(exc.code, exc.code, exc.message) from None
        except self._upstream_failures:
            metrics.connects.labels(outcome="unavailable").inc()
            log.warning("connect refused: storage unavailable", exc_info=True)
            raise _refuse("unavailable", "unavailable", "try again shortly") from None
        if not self._sockets.is_open(sid):
            # The client left while we waited: no one will disconnect this registration.
            metrics.connects.labels(outcome="gone").inc()
            try:
                await self._presence.disconnect(conn_id)
            except Exception:
                log.warning("could not undo a connect whose client left", exc_info=True)
            raise _refuse("gone", "gone", "the client left during the connect")
        state = ConnectionState(
            sid=sid,
            user_id=claims.user_id,
            session_id=claims.session_id,
            device_id=handshake.device,
            conn_id=conn_id,
            eio_sid=self._sockets.eio_sid_of(sid),
            bucket=TokenBucket(self._budget.per_second, self._budget.burst, time.monotonic()),
            token_expires_at_ms=claims.expires_at_ms,
        )
        self._connections.add(state)
        self._arm_expiry(state)
        metrics.connects.labels(outcome="ok").inc()
        metrics.connections.inc()

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        state = self._connections.remove(sid)
        if state is None:
            return
        self._metrics.connections.dec()
        try:
            await self._presence.disconnect(state.conn_id)
        except Exception:
            log.warning("presence could not record a disconnect; the TTL will", exc_info=True)

    def _arm_expiry(self, state: ConnectionState) -> None:
        delay = max(0.0, (state.token_expires_at_ms - self._clock()) / 1000)
        loop = asyncio.get_running_loop()
        state.expiry_timer = loop.call_later(delay, self._start_expiry, state.sid)

    def _start_expiry(self, sid: str) -> None:
        task = asyncio.get_running_loop().create_task(self._expire(sid))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, sid: str) -> None:
        """The token's deadline came: end the session, unless ``session:refresh`` moved the
        deadline meanwhile (then wait for the new one)."""
        state = self._connections.by_sid(sid)
        if state is None:
            return
        if state.token_expires_at_ms > self._clock():
            self._arm_expiry(state)
            return
        await self._sio.emit("session:expired", session_expired(), to=sid)
        await self._sio.disconnect(sid)


@events.on("session:refresh", RefreshSession)
async def refresh_session(ctx: EventContext[SessionEventServices], body: RefreshSession) -> Ack:
    claims = ctx.services.tokens.verify_access(body.token)
    if claims.user_id != ctx.user_id:
        raise Forbidden("the token belongs to another user")
    if claims.session_id != ctx.connection.session_id:
        # Another device's token must not keep this socket alive past its own session.
        raise Forbidden("the token belongs to another device's session")
    if await ctx.services.sessions.is_revoked(claims):
        raise SessionRevoked("this session was closed; log in again")
    return ok(expiresAt=ctx.connection.extend_session(claims.expires_at_ms))
