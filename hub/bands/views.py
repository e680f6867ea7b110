"""What the bands and gigs services answer and push: a band, a gig, their pages, and the
``band:updated`` and ``gig:updated`` pushes, each built by the one function below it.

Who sees what is the services' decision, not the transport's: ``BandService.band_view`` adds
``calendarUrl`` (the secret of the band's feed) only for its owner and admins, and a push
never carries it, since it goes to every member. None of this is on the message path, so the
views are the validated models themselves, sent with ``View.wire()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from hub.protocol.fields import BandRole, GigStatusName
from hub.protocol.models import View, pushed
from storage.sql.bands import BandRecord
from storage.sql.gigs import GigRow

BandChange = Literal[
    "created", "updated", "member_added", "member_removed", "role_changed", "deleted"
]
GigChange = Literal["created", "updated", "status_changed"]


class MemberView(View):
    userId: str
    role: BandRole


class BandView(View):
    id: str
    name: str
    genre: str | None
    ownerId: str
    members: list[MemberView]
    calendarUrl: str | None = Field(
        default=None,
        description="the band's iCalendar feed; only for the owner and admins (never pushed)",
    )


def band_view(record: BandRecord, *, calendar_url: str | None = None) -> BandView:
    """The band; with ``calendar_url`` only when the viewer is one of its managers."""
    band = record.band
    view = BandView(
        id=band.id,
        name=band.name,
        genre=band.genre,
        ownerId=band.owner_id,
        members=[MemberView(userId=m.user_id, role=m.role) for m in record.members],
    )
    if calendar_url is not None:
        view.calendarUrl = calendar_url
    return view


class BandPage(View):
    items: list[BandView]
    nextCursor: str | None


def band_page(items: Sequence[BandView], next_cursor: str | None) -> BandPage:
    return BandPage(items=list(items), nextCursor=next_cursor)


class GigView(View):
    id: str
    bandId: str
    venueName: str
    date: str = Field(description="YYYY-MM-DD, at the venue")
    startTime: str | None = Field(description="HH:MM at the venue; null: all day")
    endTime: str | None = Field(description="HH:MM; not after startTime: the next day")
    feeAmount: int = Field(description="integer minor units of currency (cents)")
    currency: str = Field(description="ISO 4217")
    locationAddress: str | None
    notes: str | None
    status: GigStatusName
    updatedAt: int
    paidAmount: int | None = Field(
        default=None,
        description="GET /api/gigs/:id only: what succeeded, less refunds and disputes",
    )
    outstanding: int | None = Field(
        default=None, description="GET /api/gigs/:id only: fee - paid - pending, at least 0"
    )


def gig_view(gig: GigRow, money: tuple[int, int] | None = None) -> GigView:
    """``money`` (paidAmount, outstanding) where the answer carries it (one gig's GET)."""
    view = _gig_view(gig)
    if money is not None:
        view.paidAmount, view.outstanding = money
    return view


def _gig_view(gig: GigRow) -> GigView:
    d = gig.details
    return GigView(
        id=gig.id,
        bandId=gig.band_id,
        venueName=d.venue_name,
        date=d.date.isoformat(),
        startTime=d.start_time.strftime("%H:%M") if d.start_time else None,
        endTime=d.end_time.strftime("%H:%M") if d.end_time else None,
        feeAmount=d.fee_amount,
        currency=d.currency,
        locationAddress=d.location_address,
        notes=d.notes,
        status=gig.status,
        updatedAt=gig.updated_at,
    )


class GigPage(View):
    items: list[GigView]
    nextCursor: str | None


def gig_page(gigs: Sequence[GigRow], next_cursor: str | None) -> GigPage:
    return GigPage(items=[gig_view(g) for g in gigs], nextCursor=next_cursor)


@pushed("band:updated")
class BandUpdatedEvent(View):
    """The ``band:updated`` push."""

    band: BandView
    change: BandChange
    userId: str | None = Field(default=None, description="the member a member change is about")


def band_updated_event(
    record: BandRecord, change: BandChange, member_id: str | None
) -> BandUpdatedEvent:
    """The push of a change, to every member: so never with ``calendarUrl``."""
    event = BandUpdatedEvent(band=band_view(record), change=change)
    if member_id is not None:
        event.userId = member_id
    return event


@pushed("gig:updated")
class GigUpdatedEvent(View):
    """The ``gig:updated`` push."""

    gig: GigView
    change: GigChange


def gig_updated_event(gig: GigRow, change: GigChange) -> GigUpdatedEvent:
    return GigUpdatedEvent(gig=gig_view(gig), change=change)
