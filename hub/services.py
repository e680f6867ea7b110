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
from hub.settings import Settings
from storage.redis.presence import RedisDeviceRegistry


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


@dataclass(frozen=True, slots=True)
class Hub:
    """The built services, and the send queue whose deliverer the assembly runs."""

    services: Services
    send_queue: SendQueue


def build_hub(
    settings: Settings,
    base: Foundation,
    *,
    devices: RedisDeviceRegistry,
    gateways: PaymentGateways,
) -> Hub:
    accounts = build_accounts(settings.accounts, base, devices)
    messaging = build_messaging(settings.messaging, base)
    calls = build_calls(settings.calls, base)
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
    )
    return Hub(services, messaging.send_queue)
