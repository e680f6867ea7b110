"""Bands and gigs over REST, as the app would create them, for the tests that need one."""

from __future__ import annotations

from typing import Any

from hub.bands.views import BandView, GigView
from tests.support import Account, Api


async def create_band(
    api: Api, owner: Account, *members: Account, name: str = "The Rockers", **extra: Any
) -> dict[str, Any]:
    """A band owned by ``owner`` with ``members`` added as plain members; the band as the
    last call answered it."""
    status, band = await api.request(
        "POST", "/api/bands", token=owner.access_token, json={"name": name, **extra}
    )
    assert status == 201, band
    for member in members:
        status, band = await api.request(
            "POST",
            f"/api/bands/{band['id']}/members",
            token=owner.access_token,
            json={"userId": member.id},
        )
        assert status == 201, band
    BandView.model_validate(band)
    return band


async def create_gig(api: Api, owner: Account, band_id: str, **fields: Any) -> dict[str, Any]:
    body = {"bandId": band_id, "venueName": "Paradiso", "date": "2031-05-01", **fields}
    status, gig = await api.request("POST", "/api/gigs", token=owner.access_token, json=body)
    assert status == 201, gig
    GigView.model_validate(gig)
    return gig


def roles(band: dict[str, Any]) -> dict[str, str]:
    return {m["userId"]: m["role"] for m in band["members"]}
