"""Builds push: the providers that are configured, the queue every node shares, the writer
the other capabilities hand jobs to, the worker the assembly runs, and the routes' service."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from hub.foundation import Foundation
from hub.push.apns import ApnsProvider
from hub.push.audience import PushAudience
from hub.push.enqueue import NoPushes, PushQueueWriter
from hub.push.expand import LiveDevices, PushPlanner
from hub.push.fcm import FcmProvider
from hub.push.http import ProviderHttp
from hub.push.providers import Provider, trust
from hub.push.service import PushService
from hub.push.worker import PushWorker
from hub.settings.push import PushSettings
from storage.redis.push_audience import RedisPushAudienceChannel
from storage.redis.push_queue import RedisPushQueue
from storage.sql.push import NotificationStore, PushTokenStore
from storage.sql.sessions import SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pushes:
    service: PushService
    writer: PushQueueWriter | NoPushes
    audience: PushAudience | None  # None: no provider configured
    worker: PushWorker | None  # None: no provider configured, or PUSH_WORKER off here


def providers_of(settings: PushSettings) -> dict[str, Provider]:
    context = trust(settings.ca_file)
    providers: dict[str, Provider] = {}

    def client() -> ProviderHttp:
        return ProviderHttp(context, settings.timeout_seconds, settings.concurrency)

    if settings.apns_configured:
        providers["apns"] = ApnsProvider(settings, client())
    if settings.fcm_configured:
        providers["fcm"] = FcmProvider(settings, client(), context)
    return providers


def build_push(
    settings: PushSettings,
    base: Foundation,
    *,
    tokens: PushTokenStore,
    online: LiveDevices,
    node_id: str,
) -> Pushes:
    providers = providers_of(settings)
    _log_providers(settings, providers)
    notifications = NotificationStore(base.pool)
    audience = (
        PushAudience(tokens, RedisPushAudienceChannel(base.redis, base.keys), base.metrics)
        if providers
        else None
    )
    service = PushService(
        tokens=tokens,
        notifications=notifications,
        sessions=SessionStore(base.pool),
        conversations=base.memberships,
        configured=frozenset(providers),
        audience=audience,
        clock=base.clock,
    )
    if audience is None:
        return Pushes(service, NoPushes(), None, None)
    queue = RedisPushQueue(base.redis, base.keys, consumer=node_id)
    planner = PushPlanner(
        queue=queue,
        keys=base.keys,
        tokens=tokens,
        notifications=notifications,
        online=online,
        clock=base.clock,
        coalesce_ms=settings.coalesce_ms,
    )
    worker = PushWorker(
        settings=settings,
        queue=queue,
        planner=planner,
        tokens=tokens,
        providers=providers,
        metrics=base.metrics,
        clock=base.clock,
    )
    writer = PushQueueWriter(queue, base.keys, base.clock, audience, base.metrics)
    if not settings.worker:
        log.info("push: PUSH_WORKER is off; this node queues pushes and other nodes send them")
        return Pushes(service, writer, audience, None)
    return Pushes(service, writer, audience, worker)


def _log_providers(settings: PushSettings, providers: Collection[str]) -> None:
    apns = (
        f"APNs configured (topic {settings.apns_topic}, {settings.apns_url or 'Apple'})"
        if "apns" in providers
        else "APNs not configured (no APNS_KEY_FILE)"
    )
    fcm = (
        f"FCM configured ({settings.fcm_url})"
        if "fcm" in providers
        else "FCM not configured (no FCM_CREDENTIALS_FILE)"
    )
    log.info("push: %s; %s", apns, fcm)
