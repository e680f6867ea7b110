"""The services a transport may call, and the one function that builds them all.

Transports receive ``Services`` (REST) or the few services their event table declares
(sockets); nothing here reads settings beyond the section each builder is handed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.accounts.builder import build_accounts
from hub.accounts.devices import DeviceService
from hub.accounts.service import AccountService
from hub.accounts.sessions import SessionService
from hub.accounts.tokens import TokenService
from hub.attachments.builder import build_attachments
from hub.attachments.ports import BlobStore
from hub.attachments.service import AttachmentService
from hub.bands.builder import build_bands
from hub.bands.gigs import GigService
from hub.bands.invitations import InvitationService
from hub.bands.service import BandService
from hub.calls.builder import build_calls
from hub.calls.livekit import LiveKitInstances
from hub.calls.rooms import RoomAccess
from hub.calls.service import CallService
from hub.clock import Clock
from hub.consent.builder import build_consent
from hub.consent.service import ConsentService
from hub.foundation import Foundation
from hub.messaging.builder import build_messaging
from hub.messaging.send_queue import SendQueue
from hub.messaging.service import MessagingService
from hub.messaging.typing import TypingService
from hub.metrics import HubMetrics
from hub.payments.builder import build_payments
from hub.payments.gateways import PaymentGateways
from hub.payments.service import PaymentService
from hub.presence.builder import build_presence
from hub.presence.service import PresenceService
from hub.push.audience import PushAudience
from hub.push.builder import build_push
from hub.push.service import PushService
from hub.push.worker import PushWorker
from hub.settings import Settings
from storage.redis.presence import RedisDeviceRegistry
from storage.sql.push import PushTokenStore


@dataclass(frozen=True, slots=True)
class Services:
    tokens: TokenService
    accounts: AccountService
    sessions: SessionService
    devices: DeviceService
    messaging: MessagingService
    presence: PresenceService
    typing: TypingService
    metrics: HubMetrics
    clock: Clock
    bands: BandService
    invitations: InvitationService
    consent: ConsentService
    gigs: GigService
    livekit: LiveKitInstances
    calls: CallService
    rooms: RoomAccess
    payments: PaymentService
    attachments: AttachmentService
    push: PushService


@dataclass(frozen=True, slots=True)
class Hub:
    """The built services, and the send queue whose deliverer the assembly runs."""

    services: Services
    send_queue: SendQueue
    push_audience: PushAudience | None  # None: no push provider configured
    push_worker: PushWorker | None  # None: no push provider configured, or PUSH_WORKER off


def build_hub(
    settings: Settings,
    base: Foundation,
    *,
    devices: RedisDeviceRegistry,
    gateways: PaymentGateways,
    blobs: BlobStore,
) -> Hub:
    push_tokens = PushTokenStore(base.pool)
    push = build_push(
        settings.push, base, tokens=push_tokens, online=devices, node_id=settings.server.node_id
    )
    accounts = build_accounts(settings.accounts, base, devices, push.service)
    attachments = build_attachments(settings.attachments, base, blobs)
    messaging = build_messaging(settings.messaging, base, attachments, push.writer)
    calls = build_calls(settings.calls, base, push.writer)
    bands = build_bands(
        settings.bands,
        base,
        server_secret=settings.accounts.jwt_secret,
        public_url=settings.api.public_url,
        leave_calls=calls.service.drop_from_band_calls,
    )
    services = Services(
        tokens=accounts.tokens,
        accounts=accounts.service,
        sessions=accounts.sessions,
        devices=accounts.devices,
        messaging=messaging.service,
        presence=build_presence(settings.presence, base, devices, settings.server.node_id),
        typing=messaging.typing,
        metrics=base.metrics,
        clock=base.clock,
        bands=bands.service,
        invitations=bands.invitations,
        consent=build_consent(base, end_calls=calls.service.end_calls_between),
        gigs=bands.gigs,
        livekit=calls.livekit,
        calls=calls.service,
        rooms=calls.rooms,
        payments=build_payments(
            settings.payments, base, gateways=gateways, gigs=bands.gigs, bands=bands.store
        ),
        attachments=attachments,
        push=push.service,
    )
    return Hub(services, messaging.send_queue, push.audience, push.worker)
