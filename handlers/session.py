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
from typing import Any

import pydantic
from pydantic import Field
from socketio.exceptions import ConnectionRefusedError as RefuseConnection

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from handlers.registry import ConnectionRegistry, ConnectionState
from hub.errors import Forbidden, HubError, NotAuthenticated, upstream_failures
from hub.protocol.fields import (
    MAX_DEVICE_ID,
)
from hub.rate_limits import TokenBucket
from hub.services import Services


class RefreshSession(Payload):
    token: str = Field(min_length=1, max_length=4096)


class Handshake(Payload):
    """The ``auth`` object of the Socket.IO connect."""

    token: str = Field(min_length=1, max_length=4096)
    device: str = Field(min_length=1, max_length=MAX_DEVICE_ID, pattern=r"^[A-Za-z0-9._:-]+$")


log = logging.getLogger(__name__)

events = EventTable()


def _refuse(message: str, code: str, detail: str) -> RefuseConnection:
    return RefuseConnection(message, {"code": code, "message": detail})


class SocketLifecycle:
    def __init__(self, sio: Any, services: Services, connections: ConnectionRegistry) -> None:
        self._sio = sio
        self._services = services
        self._connections = connections
        self._upstream_failures = upstream_failures()
        # The loop keeps only weak references to tasks: hold each expiry until it finishes.
        self._expiring: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        self._sio.on("connect", self.connect)
        self._sio.on("disconnect", self.disconnect)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        metrics = self._services.metrics
        try:
            handshake = Handshake.model_validate(auth if isinstance(auth, dict) else {})
        except pydantic.ValidationError:
            metrics.connects.labels(outcome="unauthorized").inc()
            raise _refuse(
                "unauthorized", "invalid_handshake", "connect with auth: {token, device}"
            ) from None
        try:
            claims = self._services.tokens.verify_access(handshake.token)
        except NotAuthenticated as exc:
            metrics.connects.labels(outcome="unauthorized").inc()
            reason = (exc.details or {}).get("reason", "token_invalid")
            raise _refuse("unauthorized", reason, exc.message) from None
        conn_id = uuid.uuid4().hex
        try:
            await self._services.presence.connect(claims.user_id, handshake.device, conn_id)
        except HubError as exc:
            metrics.connects.labels(outcome=exc.code).inc()
            raise _refuse(exc.code, exc.code, exc.message) from None
        except self._upstream_failures:
            metrics.connects.labels(outcome="unavailable").inc()
            log.warning("connect refused: storage unavailable", exc_info=True)
            raise _refuse("unavailable", "unavailable", "try again shortly") from None
        settings = self._services.settings
        state = ConnectionState(
            sid=sid,
            user_id=claims.user_id,
            device_id=handshake.device,
            conn_id=conn_id,
            bucket=TokenBucket(
                settings.sockets.events_per_second, settings.sockets.event_burst, time.monotonic()
            ),
            token_expires_at_ms=claims.expires_at_ms,
            eio_sid=self._sio.manager.eio_sid_from_sid(sid, "/") or "",
        )
        self._connections.add(state)
        self.arm_expiry(state)
        metrics.connects.labels(outcome="ok").inc()
        metrics.connections.inc()

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        state = self._connections.remove(sid)
        if state is None:
            return
        self._services.metrics.connections.dec()
        try:
            await self._services.presence.disconnect(state.conn_id)
        except Exception:
            log.warning("presence could not record a disconnect; the TTL will", exc_info=True)

    def arm_expiry(self, state: ConnectionState) -> None:
        if state.expiry_timer is not None:
            state.expiry_timer.cancel()
        delay = max(0.0, (state.token_expires_at_ms - self._services.clock()) / 1000)
        loop = asyncio.get_running_loop()
        state.expiry_timer = loop.call_later(delay, self._start_expiry, state.sid)

    def _start_expiry(self, sid: str) -> None:
        task = asyncio.get_running_loop().create_task(self._expire(sid))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, sid: str) -> None:
        state = self._connections.by_sid(sid)
        if state is None:
            return
        if state.token_expires_at_ms > self._services.clock():
            self.arm_expiry(state)
            return
        await self._sio.emit("session:expired", {"reason": "token_expired"}, to=sid)
        await self._sio.disconnect(sid)

    def refresh(self, sid: str, user_id: str, token: str) -> int:
        claims = self._services.tokens.verify_access(token)
        if claims.user_id != user_id:
            raise Forbidden("the token belongs to another user")
        state = self._connections.by_sid(sid)
        if state is None:
            raise NotAuthenticated("the connection is gone")
        state.token_expires_at_ms = max(state.token_expires_at_ms, claims.expires_at_ms)
        self.arm_expiry(state)
        return state.token_expires_at_ms


@events.on("session:refresh", RefreshSession)
async def refresh_session(ctx: EventContext, body: RefreshSession) -> Ack:
    lifecycle = ctx.connections.lifecycle
    assert lifecycle is not None
    expires_at = lifecycle.refresh(ctx.sid, ctx.user_id, body.token)
    return ok(expiresAt=expires_at)
