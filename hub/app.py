"""Assembly: the one place where the hub's objects are built and wired together, and the
only module of ``hub/`` that sees the transports.

``build_app(settings)`` returns an aiohttp application with the Socket.IO server attached.
Every resource that opens is one ``cleanup_ctx`` of its own, in the order they depend on
each other (aiohttp closes them in reverse): the PostgreSQL pool, Redis, the payment
gateways, the hub's objects, then each background task, then the GC tuning. A failed start
closes only what opened; a failure while closing is logged, never swallowed. Each
capability builds its own objects (``hub/<capability>/builder.py``); ``run_hub.py`` and the
test fixtures both call ``build_app``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import socketio
from aiohttp import web
from redis.asyncio.client import Redis

from handlers import calls as call_events
from handlers import messages, presence_events, session, typing_events
from handlers.dispatch import EventDispatcher
from handlers.engineio_internals import ClientPacket, EngineSockets, use_uncompressed_websockets
from handlers.registry import ConnectionRegistry
from handlers.session import EventBudget, SocketSessions
from handlers.socket_fanout import SocketFanout
from hub.attachments.builder import open_blob_store
from hub.attachments.ports import BlobStore
from hub.clock import Clock, wall_clock_ms
from hub.foundation import Foundation
from hub.metrics import HubMetrics
from hub.payments.gateways import PaymentGateways
from hub.rate_limits import SharedLimiter, WindowLimit
from hub.resources import closing, health_check, postgres_pool, redis_client
from hub.services import Hub, Services, build_hub
from hub.settings import Settings
from rest import attachments as rest_attachments
from rest import auth, health, users
from rest import bands as rest_bands
from rest import calls as rest_calls
from rest import consent as rest_consent
from rest import devices as rest_devices
from rest import gigs as rest_gigs
from rest import invitations as rest_invitations
from rest import livekit as rest_livekit
from rest import messages as rest_messages
from rest import openapi as rest_openapi
from rest import payments as rest_payments
from rest import push as rest_push
from rest.http import MAX_BODY_BYTES, error_middleware, security_headers, trusted_networks
from rest.keys import (
    API_LIMIT,
    API_LIMITER,
    CORS_ORIGINS,
    HEALTH_CHECK,
    OPENAPI_DOCUMENT,
    SERVICES,
    TRUSTED_PROXIES,
)
from rest.spec import openapi_document
from storage.redis.bus import RedisNodeBus
from storage.redis.keys import RedisKeys
from storage.redis.presence import RedisDeviceRegistry
from storage.redis.rate_limits import RedisRateWindows
from storage.sql.bands import MembershipStore
from storage.sql.users import UserStore

log = logging.getLogger(__name__)
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("postgres_pool")
REDIS: web.AppKey[Redis] = web.AppKey("redis")
BLOBS: web.AppKey[BlobStore] = web.AppKey("blob_store")
CleanupContext = Callable[[web.Application], AsyncIterator[None]]

# Every socket event family; ``_attach_socket_events`` binds each to its services.
SOCKET_TABLES = (
    session.events,
    messages.events,
    presence_events.events,
    typing_events.events,
    call_events.events,
)
REST_TABLES = (
    auth.routes,
    users.routes,
    rest_consent.routes,  # before messages: /api/messages/requests
    rest_messages.routes,
    health.routes,
    rest_bands.routes,
    rest_invitations.routes,
    rest_gigs.routes,
    rest_openapi.routes,
    rest_livekit.routes,
    rest_calls.routes,
    rest_payments.routes,
    rest_devices.routes,
    rest_attachments.routes,
    rest_push.routes,
)


class OrjsonForSocketIO:
    """python-socketio calls ``json.dumps``/``loads``; orjson is several times faster."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(raw: str | bytes, **_: Any) -> Any:
        return orjson.loads(raw)


@dataclass(frozen=True, slots=True)
class Wired:
    """What the background tasks and the shutdown need of the built hub."""

    hub: Hub
    bus: RedisNodeBus
    fanout: SocketFanout
    sockets: EngineSockets


WIRED: web.AppKey[Wired] = web.AppKey("wired")


def build_app(settings: Settings, *, clock: Clock = wall_clock_ms) -> web.Application:
    storage = settings.storage
    if not storage.database_url or not storage.redis_url or not settings.accounts.jwt_secret:
        raise ValueError("build_app needs database_url, redis_url and jwt_secret resolved")
    app = web.Application(
        middlewares=[security_headers, error_middleware], client_max_size=MAX_BODY_BYTES
    )
    sio = socket_server(settings)
    sio.attach(app)
    for table in REST_TABLES:
        app.add_routes(table)
    app[OPENAPI_DOCUMENT] = openapi_document(
        REST_TABLES, app.router.routes(), title="Artist Space hub", version="1"
    )
    app[CORS_ORIGINS] = settings.api.cors_origins
    app[TRUSTED_PROXIES] = trusted_networks(settings.api.trusted_proxies)
    gateways = PaymentGateways(settings.payments)
    app.cleanup_ctx.extend(
        [
            opened(POOL, lambda: postgres_pool(storage)),
            opened(REDIS, lambda: redis_client(storage, settings.server.node_id)),
            gateways.context,
            opened(BLOBS, lambda: open_blob_store(settings, clock)),
            hub_objects(settings, clock, sio, gateways),
            background("node bus", listen_to_the_bus),
            background("send queue deliverer", lambda w: w.hub.send_queue.run_deliveries()),
            background("presence heartbeats", lambda w: w.hub.services.presence.run_heartbeats()),
            background("call deadlines", lambda w: w.hub.services.calls.run_sweeps()),
            background("payment reconciler", lambda w: w.hub.services.payments.reconciler.run()),
            background("attachment sweep", lambda w: w.hub.services.attachments.run_sweeps()),
            background("push audience", run_push_audience),
            background("push worker", run_push_worker),
            background(
                "slow consumers",
                lambda w: w.sockets.drop_slow_consumers(
                    max_queued=settings.sockets.max_queued_events, metrics=w.hub.services.metrics
                ),
            ),
            background(
                "unconnected sessions",
                lambda w: w.sockets.close_unconnected(
                    timeout_seconds=settings.sockets.connect_timeout_seconds
                ),
            ),
            tuned_garbage_collector(settings),
        ]
    )
    app.on_shutdown.append(_closing_transports(sio))
    return app


def socket_server(settings: Settings) -> Any:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        json=OrjsonForSocketIO,
        serializer=ClientPacket,
        cors_allowed_origins=list(settings.api.cors_origins) or None,  # None: same origin only
        max_http_buffer_size=settings.sockets.max_payload_bytes,
        ping_interval=25,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )
    use_uncompressed_websockets(sio)
    return sio


def opened(
    key: web.AppKey[Any], opening: Callable[[], AbstractAsyncContextManager[Any]]
) -> CleanupContext:
    """A resource as a ``cleanup_ctx``: open it into ``app[key]``, close it on the way down."""

    async def resource_context(app: web.Application) -> AsyncIterator[None]:
        async with opening() as app[key]:
            yield

    return resource_context


def hub_objects(
    settings: Settings, clock: Clock, sio: Any, gateways: PaymentGateways
) -> CleanupContext:
    """The hub's services over the opened resources, the socket fan-out and the event
    tables; on the way down, this node's devices go offline at once (not after their TTL)."""

    async def hub_context(app: web.Application) -> AsyncIterator[None]:
        pool, redis = app[POOL], app[REDIS]
        keys = RedisKeys(settings.storage.redis_prefix)
        metrics = HubMetrics()
        connections = ConnectionRegistry()
        sockets = EngineSockets(sio)
        devices = RedisDeviceRegistry(
            redis, keys, ttl_ms=settings.presence.device_ttl_seconds * 1000
        )
        bus = RedisNodeBus(redis, keys, settings.server.node_id)
        fanout = SocketFanout(
            sockets=sockets,
            connections=connections,
            directory=devices,
            bus=bus,
            clock=clock,
            metrics=metrics,
        )
        limiter = SharedLimiter(RedisRateWindows(redis, keys))
        base = Foundation(
            pool=pool,
            redis=redis,
            keys=keys,
            fanout=fanout,
            clock=clock,
            metrics=metrics,
            limiter=limiter,
            memberships=MembershipStore(pool),
            users=UserStore(pool),
        )
        hub = build_hub(settings, base, devices=devices, gateways=gateways, blobs=app[BLOBS])
        _attach_socket_events(sio, hub.services, connections, settings)
        app[SERVICES] = hub.services
        app[API_LIMITER] = limiter
        app[API_LIMIT] = (
            WindowLimit("api", *settings.api.rate_limit) if settings.api.rate_limit else None
        )
        app[HEALTH_CHECK] = health_check(pool, redis)
        app[WIRED] = Wired(hub, bus, fanout, sockets)
        yield
        await closing(
            "this node's devices (presence)", hub.services.presence.disconnect_all_local()
        )

    return hub_context


def background(name: str, run: Callable[[Wired], Coroutine[Any, Any, None]]) -> CleanupContext:
    """One background task, owned here: started once the hub is built, cancelled and awaited
    when the application closes. A task that dies on its own is logged at once."""

    async def task_context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(app[WIRED]), name=name)
        task.add_done_callback(_log_if_it_died)
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("background task %r failed while stopping", name)

    return task_context


async def run_push_audience(wired: Wired) -> None:
    """Keeps this node's set of push-token holders (none with no provider configured)."""
    if wired.hub.push_audience is not None:
        await wired.hub.push_audience.run()


async def run_push_worker(wired: Wired) -> None:
    """Sends the pushes every node queues; none with no provider configured or with
    ``PUSH_WORKER`` off on this node."""
    if wired.hub.push_worker is not None:
        await wired.hub.push_worker.run()


async def listen_to_the_bus(wired: Wired) -> None:
    await wired.bus.listen(wired.fanout.on_bus_message)


def tuned_garbage_collector(settings: Settings) -> CleanupContext:
    """Last, once everything built at start-up exists: see docs/architecture.md, GC."""

    async def gc_context(app: web.Application) -> AsyncIterator[None]:
        await asyncio.wait_for(app[WIRED].bus.connected.wait(), 10)
        if settings.server.gc_freeze:
            gc.collect()
            gc.freeze()
        young, middle, oldest = gc.get_threshold()
        gc.set_threshold(settings.server.gc_young_threshold, middle, oldest)
        yield
        gc.set_threshold(young, middle, oldest)

    return gc_context


def _log_if_it_died(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %r stopped", task.get_name(), exc_info=task.exception())


def _closing_transports(sio: Any) -> Any:
    """On shutdown, drop every client's transport without a Socket.IO disconnect packet:
    the official client then reconnects by itself (to another node behind the balancer),
    whereas a server-side disconnect would tell it to stay away."""

    async def close_transports(app: web.Application) -> None:
        closed = await EngineSockets(sio).drop_all()
        if closed:
            log.info("closed %d client transports for shutdown", closed)

    return close_transports


def _attach_socket_events(
    sio: Any, services: Services, connections: ConnectionRegistry, settings: Settings
) -> None:
    """Each event family gets only the services its handlers may call."""
    dispatcher = EventDispatcher(connections, services.metrics)
    # Every table of SOCKET_TABLES (what the authorization matrix covers), each with the
    # services its handlers may call; binding one twice or missing one fails at start.
    dispatcher.add(
        session.events,
        session.SessionEventServices(tokens=services.tokens, sessions=services.sessions),
    )
    dispatcher.add(
        messages.events,
        messages.MessageEventServices(messaging=services.messaging, metrics=services.metrics),
    )
    dispatcher.add(
        presence_events.events,
        presence_events.PresenceEventServices(presence=services.presence),
    )
    dispatcher.add(typing_events.events, typing_events.TypingEventServices(typing=services.typing))
    dispatcher.add(call_events.events, call_events.CallEventServices(calls=services.calls))
    dispatcher.require_bound(SOCKET_TABLES)
    dispatcher.attach(sio)
    SocketSessions(
        sio,
        connections,
        tokens=services.tokens,
        sessions=services.sessions,
        presence=services.presence,
        metrics=services.metrics,
        clock=services.clock,
        budget=EventBudget(
            per_second=settings.sockets.events_per_second, burst=settings.sockets.event_burst
        ),
    ).attach()
