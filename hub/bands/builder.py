"""Builds bands and gigs. The calendar key is derived from the hub's secret (never stored)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.bands.gigs import GigService
from hub.bands.invitations import InvitationService
from hub.bands.service import BandService, LeaveCalls, derive_calendar_key
from hub.foundation import Foundation
from hub.settings.bands import BandSettings
from storage.sql.bands import BandStore
from storage.sql.gigs import GigStore
from storage.sql.invitations import InvitationStore


@dataclass(frozen=True, slots=True)
class Bands:
    store: BandStore
    service: BandService
    gigs: GigService
    invitations: InvitationService


def build_bands(
    settings: BandSettings,
    base: Foundation,
    *,
    server_secret: str,
    public_url: str,
    leave_calls: LeaveCalls,
) -> Bands:
    store = BandStore(base.pool)
    bands = BandService(
        bands=store,
        memberships=base.memberships,
        fanout=base.fanout,
        clock=base.clock,
        calendar_key=derive_calendar_key(server_secret),
        public_url=public_url,
        leave_calls=leave_calls,
    )
    gigs = GigService(gigs=GigStore(base.pool), bands=bands, fanout=base.fanout, clock=base.clock)
    invitations = InvitationService(
        store=InvitationStore(base.pool),
        bands=bands,
        fanout=base.fanout,
        clock=base.clock,
        invitation_ms=settings.invitation_seconds * 1000,
        per_day=settings.invitations_per_day,
        public_url=public_url or None,
    )
    return Bands(store, bands, gigs, invitations)
