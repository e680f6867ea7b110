"""Band invitations and invite links: a band's owner or admin asks, the invitee decides.

Until they accept, invitees are not members, so they get no band messages, presence or band
calls (all of those check membership). Invitations expire after ``BAND_INVITATION_SECONDS``;
a band, and an inviter, may create ``INVITATIONS_PER_DAY`` invitations and links in 24 hours.
A link's token carries 256 random bits and only its SHA-256 digest is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from hub.bands.invitation_views import (
    BandInvitedEvent,
    InvitationList,
    InvitationView,
    InviteLinkView,
    invitation_list,
    invitation_view,
)
from hub.bands.service import BandRecord, BandService, require_manager
from hub.bands.views import band_updated_event
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, InvalidPayload, NotFound, RateLimited
from hub.fanout import Delivery, Fanout
from storage.sql.bands import BandGone, UnknownUser
from storage.sql.invitations import (
    AlreadyInvited,
    AlreadyMember,
    BlockedEitherWay,
    InvitationStore,
    LinkLimits,
    TooManyToday,
)

DAY_MS = 86_400_000
LIST_LIMIT = 200
TOKEN_BYTES = 32
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
RETRY_SECONDS = 3600


def link_digest(token: str) -> bytes | None:
    """The stored digest of a link token; None for anything no link could have."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    return hashlib.sha256(token.encode()).digest()


class InvitationService:
    def __init__(
        self,
        *,
        store: InvitationStore,
        bands: BandService,
        fanout: Fanout,
        clock: Clock,
        invitation_ms: int,
        per_day: int,
        public_url: str | None,
    ) -> None:
        self._store = store
        self._bands = bands
        self._fanout = fanout
        self._clock = clock
        self._invitation_ms = invitation_ms
        self._per_day = per_day
        self._public_url = public_url

    def _limits(self) -> LinkLimits:
        now = self._clock()
        return LinkLimits(now, now - DAY_MS, self._per_day)

    async def invite(self, inviter: str, band_id: str, user_id: str, role: str) -> InvitationView:
        _, actor_role = await self._bands.access_band(inviter, band_id)
        require_manager(actor_role, "invite members")
        if role == "owner":
            raise InvalidPayload("invite as admin or member; make someone owner with a role change")
        limits = self._limits()
        try:
            row = await self._store.invite(
                band_id, user_id, role, inviter, limits.now_ms + self._invitation_ms, limits
            )
        except UnknownUser:
            raise NotFound("no such user") from None
        except BandGone:
            raise NotFound("no such band") from None
        except AlreadyMember:
            raise Conflict("already a member of this band") from None
        except AlreadyInvited:
            raise Conflict("already invited to this band") from None
        except BlockedEitherWay:
            raise Forbidden("you cannot invite this user") from None
        except TooManyToday:
            raise _too_many() from None
        view = invitation_view(row)
        event = BandInvitedEvent(invitation=view).wire()
        await self._fanout.deliver([Delivery(user_id, "band:invited", event)])
        return view

    async def invitations_of(self, user_id: str) -> InvitationList:
        return invitation_list(await self._store.pending_for(user_id, self._clock(), LIST_LIMIT))

    async def accept(self, user_id: str, invitation_id: str) -> BandRecord:
        record = await self._store.accept(invitation_id, user_id, self._clock())
        if record is None:
            raise NotFound("no such invitation")
        await self._joined(record, user_id)
        return record

    async def decline(self, user_id: str, invitation_id: str) -> None:
        if not await self._store.decline(invitation_id, user_id):
            raise NotFound("no such invitation")

    async def withdraw(self, manager: str, band_id: str, invitation_id: str) -> None:
        _, role = await self._bands.access_band(manager, band_id)
        require_manager(role, "withdraw invitations")
        if not await self._store.withdraw(band_id, invitation_id):
            raise NotFound("no such invitation")

    async def create_link(
        self,
        manager: str,
        band_id: str,
        role: str,
        expires_in_seconds: int | None,
        max_uses: int | None,
        origin: str,
    ) -> InviteLinkView:
        _, actor_role = await self._bands.access_band(manager, band_id)
        require_manager(actor_role, "create invite links")
        lifetime_ms = self._invitation_ms
        if expires_in_seconds is not None:
            if expires_in_seconds * 1000 > self._invitation_ms:
                raise InvalidPayload(
                    f"expiresInSeconds: at most {self._invitation_ms // 1000}",
                    details={"field": "expiresInSeconds"},
                )
            lifetime_ms = expires_in_seconds * 1000
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = link_digest(token)
        assert digest is not None
        limits = self._limits()
        expires_at = limits.now_ms + lifetime_ms
        try:
            await self._store.create_link(
                digest, band_id, role, manager, expires_at, max_uses, limits
            )
        except BandGone:
            raise NotFound("no such band") from None
        except TooManyToday:
            raise _too_many() from None
        url = f"{self._public_url or origin}/invite/{token}"
        return InviteLinkView(token=token, url=url, expiresAt=expires_at, maxUses=max_uses)

    async def use_link(self, user_id: str, token: str) -> BandRecord:
        digest = link_digest(token)
        try:
            record = await self._store.use_link(digest, user_id, self._clock()) if digest else None
        except AlreadyMember:
            raise Conflict("already a member of this band") from None
        if record is None:
            raise NotFound("no such invite link, or it expired, was used up or withdrawn")
        await self._joined(record, user_id)
        return record

    async def withdraw_link(self, manager: str, band_id: str, token: str) -> None:
        _, role = await self._bands.access_band(manager, band_id)
        require_manager(role, "withdraw invite links")
        digest = link_digest(token)
        if digest is None or not await self._store.withdraw_link(band_id, digest):
            raise NotFound("no such invite link")

    async def _joined(self, record: BandRecord, user_id: str) -> None:
        payload = band_updated_event(record, "member_added", user_id).wire()
        await self._fanout.deliver(
            [Delivery(u, "band:updated", payload) for u in record.member_ids]
        )


def _too_many() -> RateLimited:
    return RateLimited(
        "too many invitations today for this band or inviter; try again later",
        retry_after_seconds=RETRY_SECONDS,
    )
