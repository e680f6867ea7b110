"""Band invitations and invite links: nobody becomes a member without saying yes.

Every write that adds a member locks the band's row first, as ``BandStore``'s member writes
do, and returns the band as committed. Invite links are kept by the SHA-256 digest of their
token only, so the database never holds a usable link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures
from storage.sql.bands import (
    INSERT_MEMBER_IF_NEW,
    SELECT_BAND_FOR_UPDATE,
    BandGone,
    BandRecord,
    UnknownUser,
    band_of,
    with_members,
)
from storage.sql.consent import BLOCKED_EITHER_WAY


class AlreadyMember(Exception):
    """The user is a member of the band already; nothing was written."""


class AlreadyInvited(Exception):
    """The user has a pending invitation to the band already; nothing was written."""


class BlockedEitherWay(Exception):
    """One of the two blocked the other; nothing was written."""


class TooManyToday(Exception):
    """The band or the inviter reached the day's invitations; nothing was written."""


@dataclass(frozen=True, slots=True)
class InvitationRow:
    id: str
    band_id: str
    band_name: str
    user_id: str
    role: str
    invited_by: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class LinkLimits:
    """When a new invitation or link is made: now, a day ago, and the day's allowance."""

    now_ms: int
    day_ago_ms: int
    per_day: int


INVITATION_COLUMNS = """
i.id, i.band_id, b.name AS band_name, i.user_id, i.role, i.invited_by, i.created_at, i.expires_at
"""
EXPIRE_STALE = """
UPDATE band_invitations SET status = 'expired'
WHERE band_id = $1 AND user_id = $2 AND status = 'pending' AND expires_at <= $3
"""
IS_MEMBER = "SELECT EXISTS (SELECT 1 FROM band_members WHERE band_id = $1 AND user_id = $2)"
# Invitations and links made today by the band ($1) and by the inviter ($2).
COUNT_MADE_TODAY = """
SELECT
  (SELECT count(*) FROM band_invitations WHERE band_id = $1 AND created_at > $3)
  + (SELECT count(*) FROM band_invite_links WHERE band_id = $1 AND created_at > $3) AS band,
  (SELECT count(*) FROM band_invitations WHERE invited_by = $2 AND created_at > $3)
  + (SELECT count(*) FROM band_invite_links WHERE created_by = $2 AND created_at > $3) AS inviter
"""
INSERT_INVITATION = """
INSERT INTO band_invitations (id, band_id, user_id, role, invited_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (band_id, user_id) WHERE status = 'pending' DO NOTHING
RETURNING id
"""
SELECT_INVITATION = f"""
SELECT {INVITATION_COLUMNS} FROM band_invitations i JOIN bands b ON b.id = i.band_id
WHERE i.id = $1
"""
SELECT_PENDING_FOR = f"""
SELECT {INVITATION_COLUMNS} FROM band_invitations i JOIN bands b ON b.id = i.band_id
WHERE i.user_id = $1 AND i.status = 'pending' AND i.expires_at > $2
ORDER BY i.created_at DESC, i.id LIMIT $3
"""
LOCK_PENDING_OF = """
SELECT band_id, role FROM band_invitations
WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > $3 FOR UPDATE
"""
SET_INVITATION_STATUS = """
UPDATE band_invitations SET status = $3
WHERE id = $1 AND status = 'pending' AND ($2::uuid IS NULL OR user_id = $2)
  AND ($4::uuid IS NULL OR band_id = $4)
RETURNING id
"""
INSERT_LINK = """
INSERT INTO band_invite_links (digest, band_id, role, created_by, created_at, expires_at, max_uses)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
LOCK_USABLE_LINK = """
SELECT band_id, role, created_by FROM band_invite_links
WHERE digest = $1 AND NOT withdrawn AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses)
FOR UPDATE
"""
COUNT_LINK_USE = "UPDATE band_invite_links SET uses = uses + 1 WHERE digest = $1"
WITHDRAW_LINK = """
UPDATE band_invite_links SET withdrawn = true WHERE digest = $1 AND band_id = $2 AND NOT withdrawn
RETURNING band_id
"""


def _invitation(row: asyncpg.Record) -> InvitationRow:
    return InvitationRow(
        id=str(row["id"]),
        band_id=str(row["band_id"]),
        band_name=row["band_name"],
        user_id=str(row["user_id"]),
        role=row["role"],
        invited_by=str(row["invited_by"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


async def _check_allowance(
    conn: asyncpg.Connection, band_id: str, inviter: str, limits: LinkLimits
) -> None:
    counts = await conn.fetchrow(COUNT_MADE_TODAY, band_id, inviter, limits.day_ago_ms)
    if counts["band"] >= limits.per_day or counts["inviter"] >= limits.per_day:
        raise TooManyToday


async def _lock_band(conn: asyncpg.Connection, band_id: str) -> asyncpg.Record:
    band = await conn.fetchrow(SELECT_BAND_FOR_UPDATE, band_id)
    if band is None:
        raise BandGone(band_id)
    return band


@translates_failures
class InvitationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def invite(
        self,
        band_id: str,
        user_id: str,
        role: str,
        inviter: str,
        expires_at: int,
        limits: LinkLimits,
    ) -> InvitationRow:
        """A pending invitation, under the band's row lock. Raises ``UnknownUser``,
        ``AlreadyMember``, ``BlockedEitherWay``, ``AlreadyInvited``, ``TooManyToday``."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock_band(conn, band_id)
            if await conn.fetchval(IS_MEMBER, band_id, user_id):
                raise AlreadyMember
            if await conn.fetchval(BLOCKED_EITHER_WAY, inviter, user_id):
                raise BlockedEitherWay
            await conn.execute(EXPIRE_STALE, band_id, user_id, limits.now_ms)
            await _check_allowance(conn, band_id, inviter, limits)
            try:
                made = await conn.fetchval(
                    INSERT_INVITATION,
                    uuid.uuid4(),
                    band_id,
                    user_id,
                    role,
                    inviter,
                    limits.now_ms,
                    expires_at,
                )
            except asyncpg.ForeignKeyViolationError:
                raise UnknownUser(user_id) from None
            if made is None:
                raise AlreadyInvited
            return _invitation(await conn.fetchrow(SELECT_INVITATION, made))

    async def pending_for(self, user_id: str, now_ms: int, limit: int) -> list[InvitationRow]:
        rows = await self._pool.fetch(SELECT_PENDING_FOR, user_id, now_ms, limit)
        return [_invitation(r) for r in rows]

    async def accept(self, invitation_id: str, user_id: str, now_ms: int) -> BandRecord | None:
        """Make the invitee a member with the invitation's role; None when the invitation is
        not theirs or no longer pending (expired, withdrawn, answered)."""
        async with self._pool.acquire() as conn, conn.transaction():
            invitation = await conn.fetchrow(LOCK_PENDING_OF, invitation_id, user_id, now_ms)
            if invitation is None:
                return None
            band = await _lock_band(conn, invitation["band_id"])
            await conn.execute(
                INSERT_MEMBER_IF_NEW, band["id"], user_id, invitation["role"], now_ms
            )
            await conn.execute(SET_INVITATION_STATUS, invitation_id, user_id, "accepted", None)
            return (await with_members(conn, [band_of(band)]))[0]

    async def decline(self, invitation_id: str, user_id: str) -> bool:
        row = await self._pool.fetchval(
            SET_INVITATION_STATUS, invitation_id, user_id, "declined", None
        )
        return row is not None

    async def withdraw(self, band_id: str, invitation_id: str) -> bool:
        row = await self._pool.fetchval(
            SET_INVITATION_STATUS, invitation_id, None, "withdrawn", band_id
        )
        return row is not None

    async def create_link(
        self,
        digest: bytes,
        band_id: str,
        role: str,
        creator: str,
        expires_at: int,
        max_uses: int | None,
        limits: LinkLimits,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock_band(conn, band_id)
            await _check_allowance(conn, band_id, creator, limits)
            await conn.execute(
                INSERT_LINK, digest, band_id, role, creator, limits.now_ms, expires_at, max_uses
            )

    async def use_link(self, digest: bytes, user_id: str, now_ms: int) -> BandRecord | None:
        """Join the link's band with its role; None for no usable link (unknown, expired,
        used up, withdrawn, or between two people one of whom blocked the other). Raises
        ``AlreadyMember`` (the use is not counted)."""
        async with self._pool.acquire() as conn, conn.transaction():
            link = await conn.fetchrow(LOCK_USABLE_LINK, digest, now_ms)
            if link is None:
                return None
            if await conn.fetchval(BLOCKED_EITHER_WAY, link["created_by"], user_id):
                return None
            band = await _lock_band(conn, link["band_id"])
            added = await conn.fetchval(
                INSERT_MEMBER_IF_NEW, band["id"], user_id, link["role"], now_ms
            )
            if added is None:
                raise AlreadyMember
            await conn.execute(COUNT_LINK_USE, digest)
            return (await with_members(conn, [band_of(band)]))[0]

    async def withdraw_link(self, band_id: str, digest: bytes) -> bool:
        return await self._pool.fetchval(WITHDRAW_LINK, digest, band_id) is not None
