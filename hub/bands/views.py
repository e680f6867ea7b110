"""TODO docstring"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.protocol.fields import GigStatusName
from hub.protocol.models import View, pushed


class MemberView(View):
    userId: str
    role: Literal["owner", "admin", "member"]


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


class BandPage(View):
    items: list[BandView]
    nextCursor: str | None


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


class GigPage(View):
    items: list[GigView]
    nextCursor: str | None


@pushed("band:updated")
class BandUpdatedEvent(View):
    """The ``band:updated`` push."""

    band: BandView
    change: Literal[
        "created", "updated", "member_added", "member_removed", "role_changed", "deleted"
    ]
    userId: str | None = Field(default=None, description="the member a member change is about")


@pushed("gig:updated")
class GigUpdatedEvent(View):
    """The ``gig:updated`` push."""

    gig: GigView
    change: Literal["created", "updated", "status_changed"]
