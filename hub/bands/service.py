"""Bands: who is in them, and who may change what.

The rules (pure functions below): a band has exactly one owner; the owner and admins manage
the band and its members; only the owner deletes the band or makes someone else owner (an
ownership handover: the old owner stays on as an admin); the owner cannot leave or be removed
without handing over first (``conflict``). Anyone may leave.

Someone who is not a member is answered as if the band did not exist (``not_found``), so band
ids cannot be probed; a member without the role for an action gets ``forbidden``.

Each change is committed, then pushed as ``band:updated {band, change}`` to the members after
the change and to anyone it removed (so their app drops the band). Ending a membership also
revokes presence, on every node, between people who are no longer contacts, and takes the
former member out of the band's live calls and LiveKit rooms. Members join only by accepting
an invitation or an invite link (``hub/bands/invitations.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, Literal

from hub.bands.views import (
    BandChange,
    BandPage,
    BandView,
    band_page,
    band_updated_event,
    band_view,
)
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, InvalidPayload, NotFound
from hub.fanout import Delivery, Fanout
from hub.protocol.cursors import Page, cursor_uuid, decode_cursor, page_of, read_part
from storage.sql.bands import BandRecord as BandRecord  # what REST shapes: re-exported
from storage.sql.bands import (
    BandStillReferenced,
    BandStore,
    MembershipStore,
)

MANAGER_ROLES = frozenset({"owner", "admin"})
# (band, user): the user is no longer a member; their band calls and rooms must drop them.
LeaveCalls = Callable[[str, str], Awaitable[None]]
EDITABLE_FIELDS = frozenset({"name", "genre"})


def may_manage(role: str | None) -> bool:
    """Owners and admins manage the band, its members, its gigs and its calendar link."""
    return role in MANAGER_ROLES


def require_manager(role: str | None, action: str) -> None:
    if not may_manage(role):
        raise Forbidden(f"only the band's owner or an admin may {action}")


def check_removal(actor_id: str, actor_role: str, target_id: str, target_role: str) -> None:
    """Leaving is open to anyone but the owner; removing others needs owner or admin."""
    if target_role == "owner":
        if actor_id == target_id:
            raise Conflict("the owner cannot leave: hand ownership to another member first")
        raise Forbidden("the owner cannot be removed")
    if actor_id != target_id:
        require_manager(actor_role, "remove members")


RoleChangePlan = Literal["handover", "set", "unchanged"]


def plan_role_change(
    actor_id: str, actor_role: str, target_id: str, target_role: str, new_role: str
) -> RoleChangePlan:
    """How a role change is carried out, or why it is refused.

    Making someone owner is a handover and only the owner may do it; the owner's own role
    changes only through a handover (``conflict`` otherwise, as it would leave no owner).
    """
    require_manager(actor_role, "change roles")
    if new_role == "owner":
        if actor_role != "owner":
            raise Forbidden("only the owner may make someone owner")
        return "unchanged" if target_id == actor_id else "handover"
    if target_role == "owner":
        if actor_role != "owner":
            raise Forbidden("the owner's role is not an admin's to change")
        raise Conflict("a band needs an owner: make another member owner instead")
    return "unchanged" if target_role == new_role else "set"


def derive_calendar_key(server_secret: str) -> bytes:
    """The key calendar tokens are made with, kept apart from the JWT key by its label:
    rotating ``JWT_SECRET`` therefore also rotates every calendar URL."""
    return hmac.new(server_secret.encode(), b"artist-space calendar feed v1", "sha256").digest()


class BandService:
    def __init__(
        self,
        *,
        bands: BandStore,
        memberships: MembershipStore,
        fanout: Fanout,
        clock: Clock,
        calendar_key: bytes,
        public_url: str | None,
        leave_calls: LeaveCalls,
    ) -> None:
        self._leave_calls = leave_calls
        self._bands = bands
        self._memberships = memberships
        self._fanout = fanout
        self._clock = clock
        self._calendar_key = calendar_key
        self._public_url = public_url

    async def access_band(self, user_id: str, band_id: str) -> tuple[BandRecord, str]:
        """The band and the user's role in it; ``not_found`` when they are not a member."""
        record = await self._bands.get(band_id)
        role = record.role_of(user_id) if record else None
        if record is None or role is None:
            raise NotFound("no such band")
        return record, role

    async def bands_of(self, user_id: str, limit: int, cursor: str | None) -> Page[BandRecord]:
        """The user's bands by name, a page at a time."""
        after: tuple[str, str] | None = None
        if cursor is not None:
            name, band_id = decode_cursor(cursor, 2)
            after = (name, read_part(band_id, cursor_uuid))
        rows = await self._bands.of_member(user_id, after, limit + 1)
        return page_of(rows, limit, lambda r: (r.band.name, r.band.id))

    def band_view(self, viewer_id: str, record: BandRecord, origin: str) -> BandView:
        """The band as ``viewer_id`` may see it: with its ``calendarUrl`` (a secret: whoever
        holds it reads the band's gigs) only for the owner and admins. ``origin`` is where
        the request came in (``https://host``), used when ``HUB_PUBLIC_URL`` is not set."""
        if not may_manage(record.role_of(viewer_id)):
            return band_view(record)
        base = self._public_url or origin
        url = f"{base}/api/bands/{record.band.id}/calendar.ics?token={self.calendar_token(record)}"
        return band_view(record, calendar_url=url)

    def band_page(self, viewer_id: str, page: Page[BandRecord], origin: str) -> BandPage:
        views = [self.band_view(viewer_id, record, origin) for record in page.items]
        return band_page(views, page.next_cursor)

    async def create(self, user_id: str, name: str, genre: str | None) -> BandRecord:
        record = await self._bands.create(name, genre, user_id, self._clock())
        await self._push(record, "created")
        return record

    async def update(self, user_id: str, band_id: str, edits: Mapping[str, Any]) -> BandRecord:
        """Change the given fields (``genre: None`` clears the genre)."""
        unknown = set(edits) - EDITABLE_FIELDS
        if unknown:
            raise InvalidPayload(f"cannot change {sorted(unknown)}")
        record, role = await self.access_band(user_id, band_id)
        require_manager(role, "change the band")
        name = edits.get("name", record.band.name)
        genre = edits.get("genre", record.band.genre)
        if (name, genre) == (record.band.name, record.band.genre):
            return record
        updated = await self._bands.update_details(band_id, name, genre)
        if updated is None:
            raise NotFound("no such band")
        await self._push(updated, "updated")
        return updated

    async def delete(self, user_id: str, band_id: str) -> None:
        """Members, gigs and the band's messages go with it."""
        record, role = await self.access_band(user_id, band_id)
        if role != "owner":
            raise Forbidden("only the owner may delete the band")
        try:
            if not await self._bands.delete(band_id):
                raise NotFound("no such band")
        except BandStillReferenced:
            raise Conflict("other records still point at this band; it cannot be deleted") from None
        members = record.member_ids
        for member in sorted(members):
            await self._leave_calls(band_id, member)
        await self._revoke_presence(
            {m: await self._lost_visibility(m, members - {m}) for m in members}
        )
        await self._push(record, "deleted")

    async def change_role(
        self, user_id: str, band_id: str, member_id: str, new_role: str
    ) -> BandRecord:
        record, actor_role = await self.access_band(user_id, band_id)
        target_role = record.role_of(member_id)
        if target_role is None:
            if not may_manage(actor_role):
                raise Forbidden("only the band's owner or an admin may change roles")
            raise NotFound("no such member")
        plan = plan_role_change(user_id, actor_role, member_id, target_role, new_role)
        if plan == "unchanged":
            return record
        if plan == "handover":
            changed = await self._bands.hand_over(band_id, user_id, member_id)
        else:
            changed = await self._bands.set_role(band_id, member_id, new_role)
        if changed is None:
            raise Conflict("the band's members changed meanwhile; reload and try again")
        await self._push(changed, "role_changed", member_id=member_id)
        return changed

    async def remove_member(self, user_id: str, band_id: str, member_id: str) -> BandRecord:
        """Remove a member, or leave when ``member_id`` is the caller. From the commit on,
        the removed user gets no more band messages or typing (both check membership at send
        time) and no presence of the members they no longer share anything with."""
        record, actor_role = await self.access_band(user_id, band_id)
        target_role = record.role_of(member_id)
        if target_role is None:
            if not may_manage(actor_role):
                raise Forbidden("only the band's owner or an admin may remove members")
            raise NotFound("no such member")
        check_removal(user_id, actor_role, member_id, target_role)
        after = await self._bands.remove_member(band_id, member_id)
        if after is None:
            raise Conflict("the band's members changed meanwhile; reload and try again")
        lost = await self._lost_visibility(member_id, after.member_ids)
        # Sharing a band or a conversation is symmetric, so one query answers both ways.
        await self._revoke_presence({member_id: lost, **{m: {member_id} for m in lost}})
        await self._leave_calls(band_id, member_id)
        await self._push(after, "member_removed", member_id=member_id, also=[member_id])
        return after

    async def rotate_calendar_token(self, user_id: str, band_id: str) -> BandRecord:
        """A new calendar URL; the old one answers 404 from now on."""
        _, role = await self.access_band(user_id, band_id)
        require_manager(role, "change the calendar link")
        rotated = await self._bands.replace_calendar_salt(band_id)
        if rotated is None:
            raise NotFound("no such band")
        return rotated

    def calendar_token(self, record: BandRecord) -> str:
        """The secret of the band's calendar URL: derived, never stored (see the migration)."""
        message = f"{record.band.id}:{record.band.calendar_salt}".encode()
        digest = hmac.new(self._calendar_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def band_for_calendar(self, band_id: str, token: str) -> BandRecord:
        """The band whose calendar ``token`` opens; ``not_found`` for any wrong pair, so a
        stale or guessed URL tells nothing."""
        record = await self._bands.get(band_id)
        if record is None or not hmac.compare_digest(
            self.calendar_token(record).encode(), token.encode()
        ):
            raise NotFound("no such calendar")
        return record

    async def _lost_visibility(self, viewer: str, others: Collection[str]) -> set[str]:
        """Those of ``others`` the viewer shares no band or conversation with any more
        (someone still met in another band or a conversation stays visible)."""
        if not others:
            return set()
        return set(others) - await self._memberships.visible_among(viewer, sorted(others))

    async def _revoke_presence(self, lost: Mapping[str, Collection[str]]) -> None:
        revoked = {viewer: users for viewer, users in lost.items() if users}
        if revoked:
            await self._fanout.revoke_presence(revoked)

    async def _push(
        self,
        record: BandRecord,
        change: BandChange,
        *,
        member_id: str | None = None,
        also: Iterable[str] = (),
    ) -> None:
        payload = band_updated_event(record, change, member_id).wire()
        recipients = record.member_ids | set(also)
        await self._fanout.deliver([Delivery(u, "band:updated", payload) for u in recipients])
