"""Assembly: the one place where the hub's objects are built and wired together.

``build_app(settings)`` returns an aiohttp application with the Socket.IO server attached.
Each pool or client is opened and closed as a pair in ``cleanup_ctx``, so a failed start
closes only what opened. ``run_hub.py`` and the test fixtures both call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import socketio
from aiohttp import web

from handlers import calls as call_events
from handlers import messages, presence_events, session, typing_events
from handlers.dispatch import EventDispatcher
from handlers.engineio_internals import ClientPacket, EngineSockets, use_uncompressed_websockets
from handlers.registry import ConnectionRegistry
from handlers.session import EventBudget, SocketSessions
from handlers.socket_fanout import SocketFanout
from hub.accounts.passwords import PasswordHasher
from hub.accounts.service import AccountService, LoginLimits
from hub.accounts.tokens import TokenService
from hub.bands.gigs import GigService
from hub.bands.service import BandService, derive_calendar_key
from hub.calls.livekit import LiveKitInstances
from hub.calls.rooms import RoomAccess
from hub.calls.service import CallService
from hub.clock import Clock, wall_clock_ms
from hub.messaging.service import MessagingService
from hub.messaging.typing import TypingService
from hub.metrics import HubMetrics
from hub.payments.gateways import PaymentGateways
from hub.payments.service import PaymentService
from hub.payments.splits import SplitService
from hub.presence.service import PresenceService
from hub.rate_limits import SharedLimiter, WindowLimit
from hub.services import Services
from hub.settings import Settings
from rest import auth, health, users
from rest import bands as rest_bands
from rest import calls as rest_calls
from rest import gigs as rest_gigs
from rest import livekit as rest_livekit
from rest import messages as rest_messages
from rest import openapi as rest_openapi
from rest import payments as rest_payments
from rest.http import error_middleware, security_headers
from rest.keys import API_LIMIT, API_LIMITER, HEALTH_CHECK, OPENAPI_DOCUMENT, SERVICES
from rest.spec import openapi_document
from storage.redis.bus import RedisNodeBus
from storage.redis.calls import RedisCallStore
from storage.redis.challenges import RedisChallengeStore
from storage.redis.client import open_redis
from storage.redis.keys import RedisKeys
from storage.redis.presence import RedisDeviceRegistry
from storage.redis.rate_limits import RedisRateWindows
from storage.sql.bands import BandStore, MembershipStore
from storage.sql.calls import CallHistoryStore
from storage.sql.db import apply_migrations, open_pool
from storage.sql.gigs import GigStore
from storage.sql.messages import MessageStore
from storage.sql.payments import PaymentStore
from storage.sql.payments_idempotency import IdempotencyStore
from storage.sql.payments_splits import SplitStore
from storage.sql.users import BiometricKeyStore, RefreshTokenStore, UserStore

log = logging.getLogger(__name__)

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
    rest_messages.routes,
    health.routes,
    rest_bands.routes,
    rest_gigs.routes,
    rest_openapi.routes,
    rest_livekit.routes,
    rest_calls.routes,
    rest_payments.routes,
)


class OrjsonForSocketIO:
    """python-socketio calls ``json.dumps``/``loads``; orjson is several times faster."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(raw: str | bytes, **_: Any) -> Any:
        return orjson.loads(raw)


def build_app(settings: Settings, *, clock: Clock = wall_clock_ms) -> web.Application:
    if (
        not settings.storage.database_url
        or not settings.storage.redis_url
        or not settings.accounts.jwt_secret
    ):
        raise ValueError("build_app needs database_url, redis_url and jwt_secret resolved")
    app = web.Application(
        middlewares=[security_headers, error_middleware], client_max_size=1024 * 1024
    )
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
    sio.attach(app)
    for table in REST_TABLES:
        app.add_routes(table)
    app[OPENAPI_DOCUMENT] = openapi_document(
        REST_TABLES, app.router.routes(), title="Artist Space hub", version="1"
    )
    gateways = PaymentGateways(settings.payments)
    app.cleanup_ctx.append(gateways.context)
    app.cleanup_ctx.append(_hub_context(settings, clock, sio, gateways))
    app.on_shutdown.append(_closing_transports(sio))
    return app


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
    dispatcher.add(session.events, session.SessionEventServices(tokens=services.tokens))
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
    dispatcher.attach(sio)
    SocketSessions(
        sio,
        connections,
        tokens=services.tokens,
        presence=services.presence,
        metrics=services.metrics,
        clock=services.clock,
        budget=EventBudget(
            per_second=settings.sockets.events_per_second, burst=settings.sockets.event_burst
        ),
    ).attach()


def _hub_context(settings: Settings, clock: Clock, sio: Any, gateways: PaymentGateways) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        assert settings.storage.database_url and settings.storage.redis_url
        pool = await open_pool(
            settings.storage.database_url,
            min_size=settings.storage.db_pool_min,
            max_size=settings.storage.db_pool_max,
        )
        redis = open_redis(
            settings.storage.redis_url, max_connections=settings.storage.redis_max_connections
        )
        background: list[asyncio.Task[None]] = []
        services: Services | None = None
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
            await redis.ping()
            keys = RedisKeys(settings.storage.redis_prefix)
            metrics = HubMetrics()
            connections = ConnectionRegistry()
            sockets = EngineSockets(sio)
            registry = RedisDeviceRegistry(
                redis, keys, ttl_ms=settings.presence.device_ttl_seconds * 1000
            )
            bus = RedisNodeBus(redis, keys, settings.server.node_id)
            fanout = SocketFanout(
                sockets=sockets,
                connections=connections,
                directory=registry,
                bus=bus,
                clock=clock,
                metrics=metrics,
            )
            users_store = UserStore(pool)
            memberships = MembershipStore(pool)
            limiter = SharedLimiter(RedisRateWindows(redis, keys))
            tokens = TokenService(
                secret=settings.accounts.jwt_secret,
                access_seconds=settings.accounts.access_token_seconds,
                refresh_seconds=settings.accounts.refresh_token_seconds,
                clock=clock,
            )
            livekit = LiveKitInstances(
                settings.calls.livekit_instances, token_seconds=settings.calls.livekit_token_seconds
            )
            calls = CallService(
                calls=RedisCallStore(redis, keys),
                history=CallHistoryStore(pool),
                memberships=memberships,
                users=users_store,
                livekit=livekit,
                fanout=fanout,
                clock=clock,
                ring_seconds=settings.calls.ring_seconds,
                max_seconds=settings.calls.max_seconds,
            )
            rooms = RoomAccess(
                livekit=livekit,
                calls=calls,
                memberships=memberships,
                users=users_store,
                clock=clock,
            )
            bands = BandService(
                bands=BandStore(pool),
                memberships=memberships,
                fanout=fanout,
                clock=clock,
                calendar_key=derive_calendar_key(settings.accounts.jwt_secret),
                public_url=settings.api.public_url,
            )
            gigs = GigService(gigs=GigStore(pool), bands=bands, fanout=fanout, clock=clock)
            services = Services(
                settings=settings,
                tokens=tokens,
                accounts=AccountService(
                    users=users_store,
                    refresh_tokens=RefreshTokenStore(pool),
                    biometric_keys=BiometricKeyStore(pool),
                    memberships=memberships,
                    challenges=RedisChallengeStore(redis, keys),
                    tokens=tokens,
                    passwords=PasswordHasher(settings.accounts.bcrypt_rounds),
                    limiter=limiter,
                    login_limits=LoginLimits(
                        per_ip=WindowLimit(
                            "login_ip",
                            settings.accounts.login_attempts_per_ip,
                            settings.accounts.login_window_seconds,
                        ),
                        per_account=WindowLimit(
                            "login_account",
                            settings.accounts.login_attempts_per_account,
                            settings.accounts.login_window_seconds,
                        ),
                    ),
                    fanout=fanout,
                    clock=clock,
                    challenge_seconds=settings.accounts.biometric_challenge_seconds,
                ),
                messaging=MessagingService(
                    messages=MessageStore(pool),
                    memberships=memberships,
                    fanout=fanout,
                    clock=clock,
                    sync_page_limit=settings.messaging.sync_page_limit,
                ),
                presence=PresenceService(
                    devices=registry,
                    memberships=memberships,
                    last_seen=users_store,
                    fanout=fanout,
                    clock=clock,
                    node_id=settings.server.node_id,
                    ttl_seconds=settings.presence.device_ttl_seconds,
                    max_devices_per_user=settings.presence.max_devices_per_user,
                ),
                typing=TypingService(
                    memberships=memberships,
                    fanout=fanout,
                    clock=clock,
                    min_interval_ms=settings.messaging.typing_min_interval_ms,
                ),
                metrics=metrics,
                clock=clock,
                bands=bands,
                gigs=gigs,
                livekit=livekit,
                calls=calls,
                rooms=rooms,
                payments=PaymentService(
                    ledger=PaymentStore(pool),
                    idempotency=IdempotencyStore(pool),
                    splits=SplitService(splits=SplitStore(pool), gigs=gigs, clock=clock),
                    gigs=gigs,
                    bands=BandStore(pool),
                    gateways=gateways.configured(),
                    fanout=fanout,
                    clock=clock,
                    gateway_timeout_seconds=settings.payments.gateway_timeout_seconds,
                    idempotency_stale_seconds=settings.payments.idempotency_stale_seconds,
                    idempotency_wait_seconds=settings.payments.idempotency_wait_seconds,
                ),
            )
            _attach_socket_events(sio, services, connections, settings)

            async def health_check() -> dict[str, bool]:
                return {
                    "postgres": await _answers(pool.fetchval("SELECT 1")),
                    "redis": await _answers(redis.ping()),
                }

            app[SERVICES] = services
            app[API_LIMITER] = limiter
            app[API_LIMIT] = (
                WindowLimit("api", *settings.api.rate_limit) if settings.api.rate_limit else None
            )
            app[HEALTH_CHECK] = health_check
            background.append(asyncio.create_task(bus.listen(fanout.on_bus_message)))
            background.append(asyncio.create_task(services.presence.run_heartbeats()))
            background.append(
                asyncio.create_task(
                    sockets.drop_slow_consumers(
                        max_queued=settings.sockets.max_queued_events, metrics=services.metrics
                    )
                )
            )
            background.append(asyncio.create_task(services.calls.run_sweeps()))
            await asyncio.wait_for(bus.connected.wait(), 10)
            if settings.server.gc_freeze:
                gc.collect()
                gc.freeze()
            _, middle, oldest = gc.get_threshold()
            gc.set_threshold(settings.server.gc_young_threshold, middle, oldest)
            yield
        finally:
            if services is not None:
                with contextlib.suppress(Exception):
                    await services.presence.disconnect_all_local()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await redis.aclose()
            with contextlib.suppress(Exception):
                await pool.close()

    return context


async def _answers(probe: Any) -> bool:
    try:
        await asyncio.wait_for(probe, 2)
        return True
    except Exception:
        return False
