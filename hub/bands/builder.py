"""Builds bands and gigs. The calendar key is derived from the hub's secret (never stored)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.bands.gigs import GigService
from hub.bands.service import BandService, derive_calendar_key
from hub.foundation import Foundation
from storage.sql.bands import BandStore
from storage.sql.gigs import GigStore


@dataclass(frozen=True, slots=True)
class Bands:
    store: BandStore
    service: BandService
    gigs: GigService


def build_bands(base: Foundation, *, server_secret: str, public_url: str) -> Bands:
    store = BandStore(base.pool)
    bands = BandService(
        bands=store,
        memberships=base.memberships,
        fanout=base.fanout,
        clock=base.clock,
        calendar_key=derive_calendar_key(server_secret),
        public_url=public_url,
    )
    gigs = GigService(gigs=GigStore(base.pool), bands=bands, fanout=base.fanout, clock=base.clock)
    return Bands(store, bands, gigs)
