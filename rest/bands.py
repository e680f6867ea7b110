"""``/api/bands``: bands, their members, and the band's calendar feed.

Someone who is not a member gets 404 for a band, as if it did not exist; a member without
the role for an action gets 403 (rules in ``hub/bands/service.py``, which also decides who
sees the band's ``calendarUrl``).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import (
    Field,
    field_validator,
)

from hub.bands.invitation_views import InvitationAnswer
from hub.bands.service import BandRecord
from hub.bands.views import BandPage, BandView
from hub.protocol.fields import (
    BandRole,
    Uuid,
    display_name,
    never_null,
    optional_text,
    required_text,
)
from rest.http import Body, Query, current_user, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes


class CreateBand(Body):
    name: str = Field(min_length=1, max_length=100)
    genre: str | None = Field(default=None, max_length=50)

    @field_validator("name")
    @classmethod
    def name_not_blank(cls, value: str) -> str:
        return display_name(value)

    @field_validator("genre")
    @classmethod
    def genre_trimmed(cls, value: str | None) -> str | None:
        return optional_text(value)


class UpdateBand(Body):
    """Only the fields sent change; ``genre: null`` clears the genre."""

    name: str | None = Field(
        default=None, min_length=1, max_length=100, json_schema_extra=never_null
    )
    genre: str | None = Field(default=None, max_length=50)

    @field_validator("name")
    @classmethod
    def name_not_blank(cls, value: str | None) -> str:
        return required_text(value)

    @field_validator("genre")
    @classmethod
    def genre_trimmed(cls, value: str | None) -> str | None:
        return optional_text(value)


class AddMember(Body):
    userId: Uuid
    role: Literal["admin", "member"] = "member"


class ChangeRole(Body):
    """``owner`` hands ownership over (only the owner may); the old owner becomes an admin."""

    role: BandRole


class BandListQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=512)


class CalendarQuery(Query):
    token: str = Field(min_length=1, max_length=128)


routes = ApiRoutes("bands")

BAND = "/api/bands/{band_id}"
MEMBER = "/api/bands/{band_id}/members/{user_id}"


def request_origin(request: web.Request) -> str:
    """Where the request came in: the calendar URL's origin when ``HUB_PUBLIC_URL`` is unset."""
    return f"{request.scheme}://{request.host}"


def band_answer(
    request: web.Request, record: BandRecord, viewer_id: str, status: int = 200
) -> web.Response:
    """The band as the service says the viewer may see it."""
    view = request.app[SERVICES].bands.band_view(viewer_id, record, request_origin(request))
    return json_response(view.wire(), status=status)


@routes.get(
    "/api/bands", summary="The caller's bands, by name", query=BandListQuery, answer=BandPage
)
async def list_bands(request: web.Request, query: BandListQuery) -> web.Response:
    user_id = current_user(request)
    bands = request.app[SERVICES].bands
    page = await bands.bands_of(user_id, query.limit, query.cursor)
    return json_response(bands.band_page(user_id, page, request_origin(request)).wire())


@routes.post(
    "/api/bands",
    summary="Create a band; the caller becomes its owner",
    body=CreateBand,
    answer=BandView,
    status=201,
)
async def create_band(request: web.Request, body: CreateBand) -> web.Response:
    user_id = current_user(request)
    record = await request.app[SERVICES].bands.create(user_id, body.name, body.genre)
    return band_answer(request, record, user_id, status=201)


@routes.get(BAND, summary="One band (members only)", answer=BandView)
async def get_band(request: web.Request) -> web.Response:
    user_id = current_user(request)
    record, _ = await request.app[SERVICES].bands.access_band(
        user_id, path_uuid(request, "band_id")
    )
    return band_answer(request, record, user_id)


@routes.put(
    BAND, summary="Change the band's name or genre (owner, admin)", body=UpdateBand, answer=BandView
)
async def update_band(request: web.Request, body: UpdateBand) -> web.Response:
    user_id = current_user(request)
    band_id = path_uuid(request, "band_id")
    edits = {name: getattr(body, name) for name in body.model_fields_set}
    record = await request.app[SERVICES].bands.update(user_id, band_id, edits)
    return band_answer(request, record, user_id)


@routes.delete(
    BAND, summary="Delete the band with its gigs and messages (owner)", media_type=None, status=204
)
async def delete_band(request: web.Request) -> web.Response:
    user_id = current_user(request)
    await request.app[SERVICES].bands.delete(user_id, path_uuid(request, "band_id"))
    return web.Response(status=204)


@routes.post(
    f"{BAND}/members",
    summary="Invite a user to the band as admin or member (owner, admin)",
    description="The member list does not change: the invitee's devices get band:invited, "
    "and they join by accepting (POST /api/invitations/:id/accept). 403 between two people "
    "one of whom blocked the other; 409 already a member or invited; 429 past "
    "INVITATIONS_PER_DAY.",
    body=AddMember,
    answer=InvitationAnswer,
    status=201,
)
async def invite_member(request: web.Request, body: AddMember) -> web.Response:
    user_id = current_user(request)
    band_id = path_uuid(request, "band_id")
    invitation = await request.app[SERVICES].invitations.invite(
        user_id, band_id, body.userId, body.role
    )
    return json_response(InvitationAnswer(invitation=invitation).wire(), status=201)


@routes.put(
    MEMBER,
    summary="Change a member's role; role owner hands ownership over",
    description="Owner and admins change roles between admin and member. Only the "
    "owner may make someone owner; they become an admin. The owner's own role changes "
    "only that way (409 otherwise).",
    body=ChangeRole,
    answer=BandView,
)
async def change_role(request: web.Request, body: ChangeRole) -> web.Response:
    user_id = current_user(request)
    band_id, member_id = path_uuid(request, "band_id"), path_uuid(request, "user_id")
    record = await request.app[SERVICES].bands.change_role(user_id, band_id, member_id, body.role)
    return band_answer(request, record, user_id)


@routes.delete(
    MEMBER,
    summary="Remove a member, or leave the band (your own id)",
    description="Owner and admins remove members; anyone may leave but the owner "
    "(409: hand ownership over first).",
    media_type=None,
    status=204,
)
async def remove_member(request: web.Request) -> web.Response:
    user_id = current_user(request)
    band_id, member_id = path_uuid(request, "band_id"), path_uuid(request, "user_id")
    await request.app[SERVICES].bands.remove_member(user_id, band_id, member_id)
    return web.Response(status=204)


@routes.post(
    f"{BAND}/calendar-token",
    summary="New calendar URL; the old one stops working (owner, admin)",
    answer=BandView,
)
async def rotate_calendar_token(request: web.Request) -> web.Response:
    user_id = current_user(request)
    band_id = path_uuid(request, "band_id")
    record = await request.app[SERVICES].bands.rotate_calendar_token(user_id, band_id)
    return band_answer(request, record, user_id)


@routes.get(
    f"{BAND}/calendar.ics",
    summary="The band's gigs as an iCalendar feed",
    description="Authorised by the secret token of the band's calendarUrl, not by a "
    "Bearer token, so phone calendars can subscribe. A wrong or rotated token is 404.",
    query=CalendarQuery,
    media_type="text/calendar",
    auth=False,
)
async def calendar_feed(request: web.Request, query: CalendarQuery) -> web.Response:
    band_id = path_uuid(request, "band_id")
    feed = await request.app[SERVICES].gigs.calendar(band_id, query.token)
    return web.Response(
        body=feed,
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Cache-Control": "private, max-age=300",
            "Content-Disposition": 'inline; filename="gigs.ics"',
        },
    )
