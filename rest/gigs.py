"""``/api/gigs``: the gigs of the caller's bands. Any member reads them; the owner and
admins create and change them, and move their status (``hub/bands/gigs.py``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import (
    Field,
    field_validator,
)

from hub.bands.gigs import GigDetails, GigFilter
from hub.bands.views import GigPage, GigView, gig_page, gig_view
from hub.protocol.fields import (
    ClockTime,
    Currency,
    FeeAmount,
    GigStatusName,
    IsoDate,
    Uuid,
    never_null,
    optional_text,
    required_text,
)
from rest.http import Body, Query, current_user, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes


class GigFields(Body):
    """What both creating and changing a gig may carry."""

    # Absent means "unchanged"; null is refused for these (and kept out of their schema).
    venueName: str | None = Field(
        default=None, min_length=1, max_length=200, json_schema_extra=never_null
    )
    date: IsoDate | None = Field(default=None, json_schema_extra=never_null)
    startTime: ClockTime | None = None
    endTime: ClockTime | None = None
    feeAmount: FeeAmount | None = Field(default=None, json_schema_extra=never_null)
    currency: Currency | None = Field(default=None, json_schema_extra=never_null)
    locationAddress: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=4000)

    @field_validator("venueName")
    @classmethod
    def venue_not_blank(cls, value: str | None) -> str:
        return required_text(value)

    @field_validator("date", "feeAmount", "currency")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    @field_validator("locationAddress", "notes")
    @classmethod
    def text_trimmed(cls, value: str | None) -> str | None:
        return optional_text(value)


class CreateGig(GigFields):
    bandId: Uuid
    venueName: str = Field(min_length=1, max_length=200)
    date: IsoDate
    feeAmount: FeeAmount = 0
    currency: Currency = "EUR"


class UpdateGig(GigFields):
    """Only the fields sent change; null clears startTime, endTime, locationAddress, notes."""


class SetGigStatus(Body):
    status: GigStatusName


class GigListQuery(Query):
    bandId: Uuid | None = None
    date_from: IsoDate | None = Field(default=None, alias="from", description="inclusive")
    to: IsoDate | None = Field(default=None, description="inclusive")
    status: GigStatusName | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=512)


routes = ApiRoutes("gigs")

GIG = "/api/gigs/{gig_id}"
# The body's camelCase fields and the names they have in GigDetails.
DETAIL_NAMES = {
    "venueName": "venue_name",
    "date": "date",
    "startTime": "start_time",
    "endTime": "end_time",
    "feeAmount": "fee_amount",
    "currency": "currency",
    "locationAddress": "location_address",
    "notes": "notes",
}


@routes.get(
    "/api/gigs", summary="Gigs of the caller's bands, by date", query=GigListQuery, answer=GigPage
)
async def list_gigs(request: web.Request, query: GigListQuery) -> web.Response:
    user_id = current_user(request)
    where = GigFilter(query.bandId, query.date_from, query.to, query.status)
    page = await request.app[SERVICES].gigs.gigs_of(user_id, where, query.limit, query.cursor)
    return json_response(gig_page(page.items, page.next_cursor).wire())


@routes.post(
    "/api/gigs",
    summary="Add a gig to a band (owner, admin); it starts as inquiry",
    body=CreateGig,
    answer=GigView,
    status=201,
)
async def create_gig(request: web.Request, body: CreateGig) -> web.Response:
    user_id = current_user(request)
    details = GigDetails(
        venue_name=body.venueName,
        date=body.date,
        start_time=body.startTime,
        end_time=body.endTime,
        fee_amount=body.feeAmount,
        currency=body.currency,
        location_address=body.locationAddress,
        notes=body.notes,
    )
    gig = await request.app[SERVICES].gigs.create(user_id, body.bandId, details)
    return json_response(gig_view(gig).wire(), status=201)


@routes.get(GIG, summary="One gig (members of its band)", answer=GigView)
async def get_gig(request: web.Request) -> web.Response:
    user_id = current_user(request)
    gigs = request.app[SERVICES].gigs
    gig, _, _ = await gigs.access_gig(user_id, path_uuid(request, "gig_id"))
    return json_response(gig_view(gig, await gigs.money_of(gig)).wire())


@routes.put(
    GIG,
    summary="Change a gig's details (owner, admin); only the fields sent",
    body=UpdateGig,
    answer=GigView,
)
async def update_gig(request: web.Request, body: UpdateGig) -> web.Response:
    user_id = current_user(request)
    gig_id = path_uuid(request, "gig_id")
    edits = {DETAIL_NAMES[name]: getattr(body, name) for name in body.model_fields_set}
    gig = await request.app[SERVICES].gigs.update(user_id, gig_id, edits)
    return json_response(gig_view(gig).wire())


@routes.put(
    f"{GIG}/status",
    summary="Move a gig's status (owner, admin)",
    description="inquiry → confirmed → played → paid, and cancelled before played. "
    "Another move is 409 with the allowed ones in error.details.allowed; setting the "
    "status the gig already has changes nothing.",
    body=SetGigStatus,
    answer=GigView,
)
async def set_gig_status(request: web.Request, body: SetGigStatus) -> web.Response:
    user_id = current_user(request)
    gig_id = path_uuid(request, "gig_id")
    gig = await request.app[SERVICES].gigs.set_status(user_id, gig_id, body.status)
    return json_response(gig_view(gig).wire())
