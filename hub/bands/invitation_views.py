"""The shapes of band invitations and invite links."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from hub.protocol.models import View, pushed
from storage.sql.invitations import InvitationRow


class InvitedBandView(View):
    id: str
    name: str


class InvitationView(View):
    id: str
    band: InvitedBandView
    userId: str = Field(description="the invitee")
    role: str
    invitedBy: str
    createdAt: int
    expiresAt: int


def invitation_view(row: InvitationRow) -> InvitationView:
    return InvitationView(
        id=row.id,
        band=InvitedBandView(id=row.band_id, name=row.band_name),
        userId=row.user_id,
        role=row.role,
        invitedBy=row.invited_by,
        createdAt=row.created_at,
        expiresAt=row.expires_at,
    )


class InvitationAnswer(View):
    """``POST /api/bands/:id/members``: the invitation made (the member list is unchanged)."""

    invitation: InvitationView


@pushed("band:invited")
class BandInvitedEvent(View):
    """To the invitee's devices: accept or decline with ``/api/invitations/:id``."""

    invitation: InvitationView


class InvitationList(View):
    """``GET /api/invitations``: your pending invitations, the newest first."""

    items: list[InvitationView]


def invitation_list(rows: Sequence[InvitationRow]) -> InvitationList:
    return InvitationList(items=[invitation_view(r) for r in rows])


class InviteLinkView(View):
    """A new invite link: ``token`` is shown once (the hub keeps only its digest)."""

    token: str
    url: str
    expiresAt: int
    maxUses: int | None
