"""Bands and gigs over REST, as the app would create them, for the tests that need one."""

from __future__ import annotations

from typing import Any

from hub.bands.invitation_views import InvitationAnswer
from hub.bands.views import BandView, GigView
from tests.support import Account, Api


async def create_band(
    api: Api, owner: Account, *members: Account, name: str = "The Rockers", **extra: Any
) -> dict[str, Any]:
    """A band owned by ``owner`` with ``members`` as plain members (each invited, then
    accepting, as the app does it); the band as its owner sees it."""
    status, band = await api.request(
        "POST", "/api/bands", token=owner.access_token, json={"name": name, **extra}
    )
    assert status == 201, band
    for member in members:
        await join_band(api, owner, band["id"], member)
    if members:
        status, band = await api.request(
            "GET", f"/api/bands/{band['id']}", token=owner.access_token
        )
        assert status == 200, band
    BandView.model_validate(band)
    return band


async def invite(
    api: Api, inviter: Account, band_id: str, invitee: Account, role: str = "member"
) -> dict[str, Any]:
    """The invitation ``inviter`` made (``POST /api/bands/:id/members``)."""
    status, answer = await api.request(
        "POST",
        f"/api/bands/{band_id}/members",
        token=inviter.access_token,
        json={"userId": invitee.id, "role": role},
    )
    assert status == 201, answer
    InvitationAnswer.model_validate(answer)
    return dict(answer["invitation"])


async def join_band(
    api: Api, inviter: Account, band_id: str, member: Account, role: str = "member"
) -> dict[str, Any]:
    """Invite ``member`` and accept as them; the band as the new member sees it."""
    invitation = await invite(api, inviter, band_id, member, role)
    status, band = await api.request(
        "POST", f"/api/invitations/{invitation['id']}/accept", token=member.access_token
    )
    assert status == 200, band
    BandView.model_validate(band)
    return dict(band)


async def create_gig(api: Api, owner: Account, band_id: str, **fields: Any) -> dict[str, Any]:
    body = {"bandId": band_id, "venueName": "Paradiso", "date": "2031-05-01", **fields}
    status, gig = await api.request("POST", "/api/gigs", token=owner.access_token, json=body)
    assert status == 201, gig
    GigView.model_validate(gig)
    return gig


def roles(band: dict[str, Any]) -> dict[str, str]:
    return {m["userId"]: m["role"] for m in band["members"]}


async def make_contacts(api: Api, first: Account, *others: Account) -> None:
    """Make ``first`` and ``others`` contacts of each other the way the app would: a band of
    them (a direct message to a stranger is only a request until it is accepted)."""
    await create_band(api, first, *others, name="Contacts")
