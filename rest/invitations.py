"""``/api/invitations``, ``/api/invite-links`` and a band's invitations and links: joining
a band is the invitee's decision (rules in ``hub/bands/invitations.py``)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from hub.bands.invitation_views import InvitationList, InviteLinkView
from hub.bands.views import BandView
from rest.bands import band_answer, request_origin
from rest.http import Body, current_user, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes

routes = ApiRoutes("invitations")

INVITATION = "/api/invitations/{invitation_id}"
BAND_LINKS = "/api/bands/{band_id}/invite-links"


class CreateInviteLink(Body):
    role: Literal["admin", "member"] = "member"
    expiresInSeconds: int | None = Field(default=None, ge=1)
    maxUses: int | None = Field(default=None, ge=1, le=10_000)


@routes.get("/api/invitations", summary="Your pending band invitations", answer=InvitationList)
async def list_invitations(request: web.Request) -> web.Response:
    page = await request.app[SERVICES].invitations.invitations_of(current_user(request))
    return json_response(page.wire())


@routes.post(
    f"{INVITATION}/accept",
    summary="Accept a band invitation: you become a member with its role",
    description="Not yours, expired, withdrawn or already answered: 404.",
    answer=BandView,
)
async def accept_invitation(request: web.Request) -> web.Response:
    user_id = current_user(request)
    invitation_id = path_uuid(request, "invitation_id")
    record = await request.app[SERVICES].invitations.accept(user_id, invitation_id)
    return band_answer(request, record, user_id)


@routes.post(
    f"{INVITATION}/decline", summary="Decline a band invitation", media_type=None, status=204
)
async def decline_invitation(request: web.Request) -> web.Response:
    user_id = current_user(request)
    invitation_id = path_uuid(request, "invitation_id")
    await request.app[SERVICES].invitations.decline(user_id, invitation_id)
    return web.Response(status=204)


@routes.delete(
    "/api/bands/{band_id}/invitations/{invitation_id}",
    summary="Withdraw a pending invitation (owner, admin)",
    media_type=None,
    status=204,
)
async def withdraw_invitation(request: web.Request) -> web.Response:
    user_id = current_user(request)
    band_id, invitation_id = path_uuid(request, "band_id"), path_uuid(request, "invitation_id")
    await request.app[SERVICES].invitations.withdraw(user_id, band_id, invitation_id)
    return web.Response(status=204)


@routes.post(
    BAND_LINKS,
    summary="Create an invite link (owner, admin)",
    description="The token is shown once; only its digest is stored. expiresInSeconds "
    "defaults to (and is at most) BAND_INVITATION_SECONDS; maxUses: unlimited when absent.",
    body=CreateInviteLink,
    answer=InviteLinkView,
    status=201,
)
async def create_invite_link(request: web.Request, body: CreateInviteLink) -> web.Response:
    user_id = current_user(request)
    band_id = path_uuid(request, "band_id")
    link = await request.app[SERVICES].invitations.create_link(
        user_id, band_id, body.role, body.expiresInSeconds, body.maxUses, request_origin(request)
    )
    return json_response(link.wire(), status=201)


@routes.delete(
    f"{BAND_LINKS}/{{token}}",
    summary="Withdraw an invite link (owner, admin)",
    media_type=None,
    status=204,
)
async def withdraw_invite_link(request: web.Request) -> web.Response:
    user_id = current_user(request)
    band_id = path_uuid(request, "band_id")
    await request.app[SERVICES].invitations.withdraw_link(
        user_id, band_id, request.match_info["token"]
    )
    return web.Response(status=204)


@routes.post(
    "/api/invite-links/{token}/accept",
    summary="Join a band through an invite link",
    description="Expired, used up, withdrawn or unknown: 404; already a member: 409.",
    answer=BandView,
)
async def accept_invite_link(request: web.Request) -> web.Response:
    user_id = current_user(request)
    record = await request.app[SERVICES].invitations.use_link(user_id, request.match_info["token"])
    return band_answer(request, record, user_id)
