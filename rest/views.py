"""The shapes of REST answers and pushed events, as pydantic models.

They are the OpenAPI document's response schemas (``rest/spec.py``), and the tests check
answers and ``band:updated`` / ``gig:updated`` pushes against them, so a shape changed in one
place and not the other fails a test. Handlers still build plain dicts (the hub's view
functions); these models only describe them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublicUserView(View):
    id: str
    email: str
    name: str


class SessionView(View):
    accessToken: str
    refreshToken: str
    expiresAt: int = Field(description="access token expiry, ms since the epoch")
    user: PublicUserView | None = Field(default=None, description="absent on refresh")


class BiometricKeyView(View):
    keyId: str


class BiometricChallengeView(View):
    challengeId: str
    challenge: str = Field(description="32 random bytes, base64: sign them")
    expiresAt: int


class ProfileView(View):
    id: str
    name: str
    publicKey: str | None
    email: str | None = Field(default=None, description="only in your own profile")


class PublicKeyView(View):
    userId: str
    publicKey: str | None
    updatedAt: int | None


class MessageView(View):
    """``message:new`` as the reading user sees it: ``to`` (direct) or ``band``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from")
    to: str | None = None
    band: str | None = None
    ciphertext: str
    nonce: str
    ts: int
    seq: int
    peer: str


class ConversationView(View):
    conversationId: str
    kind: Literal["direct", "band"]
    lastMessage: MessageView
    unread: int


class ConversationPage(View):
    items: list[ConversationView]
    nextCursor: None


class MessagePage(View):
    items: list[MessageView]
    nextCursor: int | None = Field(description="pass as cursor for older messages")


class SentMessageView(View):
    id: str
    ts: int


class ReadMarkView(View):
    id: str
    status: Literal["read"]
    ts: int


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


GigStatusName = Literal["inquiry", "confirmed", "played", "paid", "cancelled"]


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


class BandUpdatedEvent(View):
    """The ``band:updated`` push."""

    band: BandView
    change: Literal[
        "created", "updated", "member_added", "member_removed", "role_changed", "deleted"
    ]
    userId: str | None = Field(default=None, description="the member a member change is about")


class GigUpdatedEvent(View):
    """The ``gig:updated`` push."""

    gig: GigView
    change: Literal["created", "updated", "status_changed"]


class HealthView(View):
    status: Literal["ok", "degraded"]
    checks: dict[str, bool]
