"""The services a transport may call, bundled so handlers receive one object."""

from __future__ import annotations

from dataclasses import dataclass

from hub.accounts.service import AccountService
from hub.accounts.tokens import TokenService
from hub.bands.gigs import GigService
from hub.bands.service import BandService
from hub.calls.livekit import LiveKitInstances
from hub.calls.rooms import RoomAccess
from hub.calls.service import CallService
from hub.clock import Clock
from hub.messaging.service import MessagingService
from hub.messaging.typing import TypingService
from hub.metrics import HubMetrics
from hub.payments.service import PaymentService
from hub.presence.service import PresenceService
from hub.settings import Settings


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
