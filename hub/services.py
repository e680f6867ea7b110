"""The services a transport may call, bundled so handlers receive one object."""

from __future__ import annotations

from dataclasses import dataclass

from hub.accounts import AccountService
from hub.bands import BandService
from hub.calls import CallService
from hub.clock import Clock
from hub.gigs import GigService
from hub.livekit import LiveKitInstances
from hub.messaging import MessagingService
from hub.metrics import HubMetrics
from hub.payments import PaymentService
from hub.presence import PresenceService
from hub.rooms import RoomAccess
from hub.settings import Settings
from hub.tokens import TokenService
from hub.typing_indicators import TypingService


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    tokens: TokenService
    accounts: AccountService
    messaging: MessagingService
    presence: PresenceService
    typing: TypingService
    metrics: HubMetrics
    clock: Clock
    bands: BandService
    gigs: GigService
    livekit: LiveKitInstances
    calls: CallService
    rooms: RoomAccess
    payments: PaymentService
