"""Gigs: a band's bookings, their status and the band's calendar feed.

Any member reads a band's gigs; the owner and admins create and change them. The status
follows ``inquiry → confirmed → played → paid``, and ``cancelled`` from any state before
``played``; ``next_status`` is that rule, pure. Every change is committed, then pushed as
``gig:updated {gig, change}`` to the band's members.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, get_args

from hub.bands.calendar import render_calendar
from hub.bands.service import BandService, require_manager
from hub.bands.views import GigChange, gig_updated_event
from hub.clock import Clock
from hub.errors import Conflict, InvalidPayload, NotFound
from hub.fanout import Delivery, Fanout
from hub.payments.rules import outstanding
from hub.protocol.cursors import Page, cursor_uuid, decode_cursor, page_of, read_part
from hub.protocol.fields import GigStatusName
from storage.sql.bands import BandRecord
from storage.sql.gigs import GigDetails as GigDetails  # the transports build these: re-exported
from storage.sql.gigs import GigFilter as GigFilter
from storage.sql.gigs import GigRow, GigStore

GIG_STATUSES: tuple[GigStatusName, ...] = get_args(GigStatusName)
NEXT_STATUSES: Mapping[str, tuple[GigStatusName, ...]] = {
    "inquiry": ("confirmed", "cancelled"),
    "confirmed": ("played", "cancelled"),
    "played": ("paid",),
    "paid": (),
    "cancelled": (),
}
EDITABLE_FIELDS = frozenset(f.name for f in dataclasses.fields(GigDetails))
CALENDAR_DAYS_BACK = 366
CALENDAR_MAX_EVENTS = 2000


def next_status(current: str, target: str) -> str | None:
    """``target`` when the move is allowed, None when the gig already has it (a retry: nothing
    to do), else ``conflict`` with the allowed moves in ``details.allowed``."""
    if current == target:
        return None
    allowed = NEXT_STATUSES[current]
    if target not in allowed:
        raise Conflict(
            f"a gig cannot go from {current} to {target}",
            details={"from": current, "to": target, "allowed": list(allowed)},
        )
    return target


def check_details(details: GigDetails) -> None:
    """Rules across fields (each field's own bounds are checked where it is parsed)."""
    if details.end_time is not None and details.start_time is None:
        raise InvalidPayload("endTime needs a startTime", details={"field": "endTime"})


class GigService:
    def __init__(self, *, gigs: GigStore, bands: BandService, fanout: Fanout, clock: Clock) -> None:
        self._gigs = gigs
        self._bands = bands
        self._fanout = fanout
        self._clock = clock

    async def access_gig(self, user_id: str, gig_id: str) -> tuple[GigRow, BandRecord, str]:
        """The gig, its band and the user's role; ``not_found`` unless they are a member."""
        gig = await self._gigs.get(gig_id)
        if gig is None:
            raise NotFound("no such gig")
        try:
            record, role = await self._bands.access_band(user_id, gig.band_id)
        except NotFound:
            raise NotFound("no such gig") from None
        return gig, record, role

    async def money_of(self, gig: GigRow) -> tuple[int, int]:
        """(paidAmount, outstanding) of the gig, in its minor units."""
        paid, pending = await self._gigs.paid_and_pending(gig.id)
        return paid, outstanding(gig.details.fee_amount, paid, pending)

    async def mark_paid_if_covered(self, gig_id: str, band: BandRecord) -> None:
        """A ``played`` gig whose succeeded payments cover its fee moves to ``paid``, pushed
        as the manual move is; any other gig stays where it is."""
        gig = await self._gigs.get(gig_id)
        if gig is None or gig.status != "played" or gig.details.fee_amount <= 0:
            return
        paid, _ = await self._gigs.paid_and_pending(gig_id)
        if paid < gig.details.fee_amount:
            return
        moved = await self._gigs.set_status_if(gig_id, "played", "paid", self._clock())
        if moved is not None:
            await self._push(band, moved, "status_changed")

    async def gigs_of(
        self, user_id: str, where: GigFilter, limit: int, cursor: str | None
    ) -> Page[GigRow]:
        """Gigs of the user's bands by date, a page at a time."""
        if where.band_id is not None:
            await self._bands.access_band(user_id, where.band_id)
        if where.date_from and where.date_to and where.date_from > where.date_to:
            raise InvalidPayload("from is after to", details={"field": "from"})
        after = None
        if cursor is not None:
            day, gig_id = decode_cursor(cursor, 2)
            after = (read_part(day, dt.date.fromisoformat), read_part(gig_id, cursor_uuid))
        rows = await self._gigs.of_member(user_id, where, after, limit + 1)
        return page_of(rows, limit, lambda g: (g.details.date.isoformat(), g.id))

    async def create(self, user_id: str, band_id: str, details: GigDetails) -> GigRow:
        record, role = await self._bands.access_band(user_id, band_id)
        require_manager(role, "add gigs")
        check_details(details)
        gig = await self._gigs.create(band_id, details, self._clock())
        if gig is None:
            raise NotFound("no such band")
        await self._push(record, gig, "created")
        return gig

    async def update(self, user_id: str, gig_id: str, edits: Mapping[str, Any]) -> GigRow:
        """Change the given fields; None clears an optional one."""
        unknown = set(edits) - EDITABLE_FIELDS
        if unknown:
            raise InvalidPayload(f"cannot change {sorted(unknown)}")
        gig, record, role = await self.access_gig(user_id, gig_id)
        require_manager(role, "change gigs")
        details = dataclasses.replace(gig.details, **edits)
        if details == gig.details:
            return gig
        check_details(details)
        updated = await self._gigs.update_details(gig_id, details, self._clock())
        if updated is None:
            raise NotFound("no such gig")
        await self._push(record, updated, "updated")
        return updated

    async def set_status(self, user_id: str, gig_id: str, status: str) -> GigRow:
        gig, record, role = await self.access_gig(user_id, gig_id)
        require_manager(role, "change a gig's status")
        if next_status(gig.status, status) is None:
            return gig
        moved = await self._gigs.set_status_if(gig_id, gig.status, status, self._clock())
        if moved is None:
            # Someone moved it first: judge again from where it is now.
            current = await self._gigs.get(gig_id)
            if current is None:
                raise NotFound("no such gig")
            if next_status(current.status, status) is None:
                return current
            raise Conflict(
                "the gig's status changed meanwhile; reload and try again",
                details={"allowed": list(NEXT_STATUSES[current.status])},
            )
        await self._push(record, moved, "status_changed")
        return moved

    async def calendar(self, band_id: str, token: str) -> bytes:
        """The band's feed for whoever holds its calendar URL: gigs from a year back on."""
        record = await self._bands.band_for_calendar(band_id, token)
        today = dt.datetime.fromtimestamp(self._clock() / 1000, tz=dt.UTC).date()
        gigs = await self._gigs.of_band_from(
            band_id, today - dt.timedelta(days=CALENDAR_DAYS_BACK), CALENDAR_MAX_EVENTS
        )
        return render_calendar(record.band.name, gigs)

    async def _push(self, record: BandRecord, gig: GigRow, change: GigChange) -> None:
        payload = gig_updated_event(gig, change).wire()
        await self._fanout.deliver([Delivery(u, "gig:updated", payload) for u in record.member_ids])
