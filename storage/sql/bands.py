"""Bands and their members: the band records the bands service manages, and membership as
the messaging, presence and call rules need it.

Every write that changes members returns the band as it stands after the write, read in the
same transaction, so what is answered and pushed is exactly what was committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures

SELECT_BAND_MEMBER_IDS = "SELECT user_id FROM band_members WHERE band_id = $1"


def _contacts_of(others: str) -> str:
    """THE rule of who may interact (presence, typing, calls, receipts, ``keys:changed``):
    people who share a band with $1, or whose direct conversation with $1 was accepted,
    unless either blocked the other. ``others`` restricts the candidates (a column
    placeholder ``{col}``). Written once so that no capability's rule can drift."""
    return f"""
WITH candidate AS (
    SELECT b.user_id AS other FROM band_members a JOIN band_members b ON a.band_id = b.band_id
    WHERE a.user_id = $1 AND {others.format(col="b.user_id")}
    UNION
    SELECT user_high FROM direct_conversations
    WHERE user_low = $1 AND status = 'accepted' AND {others.format(col="user_high")}
    UNION
    SELECT user_low FROM direct_conversations
    WHERE user_high = $1 AND status = 'accepted' AND {others.format(col="user_low")}
)
SELECT other FROM candidate c
WHERE NOT EXISTS (
    SELECT 1 FROM user_blocks k
    WHERE (k.blocker = $1 AND k.blocked = c.other) OR (k.blocker = c.other AND k.blocked = $1)
)
"""


# Those among $2 who are contacts of $1.
SELECT_VISIBLE_AMONG = _contacts_of("{col} = ANY($2::uuid[])")
# Every contact of $1.
SELECT_CONTACTS = _contacts_of("{col} <> $1")


@translates_failures
class MembershipStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def band_member_ids(self, band_id: str) -> set[str]:
        rows = await self._pool.fetch(SELECT_BAND_MEMBER_IDS, band_id)
        return {str(r["user_id"]) for r in rows}

    async def visible_among(self, user_id: str, others: list[str]) -> set[str]:
        rows = await self._pool.fetch(SELECT_VISIBLE_AMONG, user_id, others)
        return {str(r["other"]) for r in rows}

    async def contacts(self, user_id: str) -> set[str]:
        rows = await self._pool.fetch(SELECT_CONTACTS, user_id)
        return {str(r["other"]) for r in rows}


class UnknownUser(LookupError):
    """The user to add does not exist; nothing was written."""


class BandGone(LookupError):
    """The band was deleted meanwhile; nothing was written."""


class BandStillReferenced(Exception):
    """Another table keeps rows that point at this band or its gigs (e.g. payments)."""


@dataclass(frozen=True, slots=True)
class BandRow:
    id: str
    name: str
    genre: str | None
    owner_id: str
    calendar_salt: str


@dataclass(frozen=True, slots=True)
class MemberRow:
    user_id: str
    role: str
    joined_at: int


@dataclass(frozen=True, slots=True)
class BandRecord:
    """A band with its members, oldest member first. Every member write locks the band's row
    first, so writes to one band's members never interleave."""

    band: BandRow
    members: tuple[MemberRow, ...]

    def role_of(self, user_id: str) -> str | None:
        for member in self.members:
            if member.user_id == user_id:
                return member.role
        return None

    @property
    def member_ids(self) -> set[str]:
        return {m.user_id for m in self.members}


BAND_COLUMNS = "id, name, genre, owner_id, calendar_salt"
INSERT_BAND = f"""
INSERT INTO bands (id, name, genre, owner_id) VALUES ($1, $2, $3, $4) RETURNING {BAND_COLUMNS}
"""
INSERT_MEMBER_IF_NEW = """
INSERT INTO band_members (band_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (band_id, user_id) DO NOTHING RETURNING user_id
"""
SELECT_BAND = f"SELECT {BAND_COLUMNS} FROM bands WHERE id = $1"
SELECT_BAND_FOR_UPDATE = f"SELECT {BAND_COLUMNS} FROM bands WHERE id = $1 FOR UPDATE"
SELECT_MEMBERS_OF_BANDS = """
SELECT band_id, user_id, role, joined_at FROM band_members WHERE band_id = ANY($1::uuid[])
ORDER BY joined_at, user_id
"""
# The bands $1 belongs to, by name then id, after the (name, id) cursor $2/$3 when given.
SELECT_BANDS_OF_MEMBER = f"""
SELECT {", ".join("b." + c.strip() for c in BAND_COLUMNS.split(","))}
FROM band_members m JOIN bands b ON b.id = m.band_id
WHERE m.user_id = $1 AND ($2::text IS NULL OR (b.name, b.id) > ($2::text, $3::uuid))
ORDER BY b.name, b.id LIMIT $4
"""
UPDATE_BAND_DETAILS = f"""
UPDATE bands SET name = $2, genre = $3 WHERE id = $1 RETURNING {BAND_COLUMNS}
"""
UPDATE_CALENDAR_SALT = f"""
UPDATE bands SET calendar_salt = $2 WHERE id = $1 RETURNING {BAND_COLUMNS}
"""
DELETE_BAND = "DELETE FROM bands WHERE id = $1"
# The owner's row is never changed or removed here: only the handover below moves ownership.
UPDATE_MEMBER_ROLE = """
UPDATE band_members SET role = $3 WHERE band_id = $1 AND user_id = $2 AND role <> 'owner'
RETURNING user_id
"""
DELETE_MEMBER = """
DELETE FROM band_members WHERE band_id = $1 AND user_id = $2 AND role <> 'owner'
RETURNING user_id
"""
SELECT_MEMBER_ROLE = "SELECT role FROM band_members WHERE band_id = $1 AND user_id = $2"
# Demote first: the one-owner index is checked after each statement.
DEMOTE_OWNER = """
UPDATE band_members SET role = 'admin' WHERE band_id = $1 AND user_id = $2 AND role = 'owner'
"""
PROMOTE_TO_OWNER = "UPDATE band_members SET role = 'owner' WHERE band_id = $1 AND user_id = $2"
UPDATE_BAND_OWNER = "UPDATE bands SET owner_id = $2 WHERE id = $1"


def band_of(row: asyncpg.Record) -> BandRow:
    return BandRow(
        id=str(row["id"]),
        name=row["name"],
        genre=row["genre"],
        owner_id=str(row["owner_id"]),
        calendar_salt=str(row["calendar_salt"]),
    )


def _member(row: asyncpg.Record) -> MemberRow:
    return MemberRow(str(row["user_id"]), row["role"], row["joined_at"])


async def with_members(conn: asyncpg.Connection, bands: Sequence[BandRow]) -> list[BandRecord]:
    if not bands:
        return []
    rows = await conn.fetch(SELECT_MEMBERS_OF_BANDS, [b.id for b in bands])
    members: dict[str, list[MemberRow]] = {b.id: [] for b in bands}
    for row in rows:
        members[str(row["band_id"])].append(_member(row))
    return [BandRecord(b, tuple(members[b.id])) for b in bands]


@translates_failures
class BandStore:
    """Band records and member writes; the rules of who may do what live in ``hub.bands``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, name: str, genre: str | None, owner_id: str, now_ms: int) -> BandRecord:
        """The band and its owner's membership, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(INSERT_BAND, uuid.uuid4(), name, genre, owner_id)
            await conn.execute(INSERT_MEMBER_IF_NEW, row["id"], owner_id, "owner", now_ms)
            return (await with_members(conn, [band_of(row)]))[0]

    async def get(self, band_id: str) -> BandRecord | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(SELECT_BAND, band_id)
            return (await with_members(conn, [band_of(row)]))[0] if row else None

    async def of_member(
        self, user_id: str, after: tuple[str, str] | None, limit: int
    ) -> list[BandRecord]:
        """The user's bands ordered by (name, id), strictly after ``after``."""
        name, band_id = after if after else (None, None)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(SELECT_BANDS_OF_MEMBER, user_id, name, band_id, limit)
            return await with_members(conn, [band_of(r) for r in rows])

    async def update_details(self, band_id: str, name: str, genre: str | None) -> BandRecord | None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(UPDATE_BAND_DETAILS, band_id, name, genre)
            return (await with_members(conn, [band_of(row)]))[0] if row else None

    async def replace_calendar_salt(self, band_id: str) -> BandRecord | None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(UPDATE_CALENDAR_SALT, band_id, uuid.uuid4())
            return (await with_members(conn, [band_of(row)]))[0] if row else None

    async def delete(self, band_id: str) -> bool:
        """False when the band was already gone. Its members, gigs and band messages go with
        it (ON DELETE CASCADE); raises ``BandStillReferenced`` when a table that must keep its
        rows (payments) still points at it."""
        try:
            result: str = await self._pool.execute(DELETE_BAND, band_id)
        except asyncpg.ForeignKeyViolationError:
            raise BandStillReferenced(band_id) from None
        return result.endswith(" 1")

    async def add_member(
        self, band_id: str, user_id: str, role: str, now_ms: int
    ) -> BandRecord | None:
        """The band after the add, or None when the user was already a member."""
        async with self._pool.acquire() as conn, conn.transaction():
            band = await conn.fetchrow(SELECT_BAND_FOR_UPDATE, band_id)
            if band is None:
                raise BandGone(band_id)
            try:
                added = await conn.fetchval(INSERT_MEMBER_IF_NEW, band_id, user_id, role, now_ms)
            except asyncpg.ForeignKeyViolationError:
                raise UnknownUser(user_id) from None
            if added is None:
                return None
            return (await with_members(conn, [band_of(band)]))[0]

    async def set_role(self, band_id: str, user_id: str, role: str) -> BandRecord | None:
        """The band after the change, or None when the user is not a member or is the owner
        (ownership moves only with ``hand_over``)."""
        async with self._pool.acquire() as conn, conn.transaction():
            band = await conn.fetchrow(SELECT_BAND_FOR_UPDATE, band_id)
            if (
                band is None
                or await conn.fetchval(UPDATE_MEMBER_ROLE, band_id, user_id, role) is None
            ):
                return None
            return (await with_members(conn, [band_of(band)]))[0]

    async def remove_member(self, band_id: str, user_id: str) -> BandRecord | None:
        """The band after the removal, or None when the user was not a (non-owner) member."""
        async with self._pool.acquire() as conn, conn.transaction():
            band = await conn.fetchrow(SELECT_BAND_FOR_UPDATE, band_id)
            if band is None or await conn.fetchval(DELETE_MEMBER, band_id, user_id) is None:
                return None
            return (await with_members(conn, [band_of(band)]))[0]

    async def hand_over(self, band_id: str, from_owner: str, to_member: str) -> BandRecord | None:
        """Make ``to_member`` the owner and ``from_owner`` an admin, in one transaction under
        the band's row lock. None (and nothing changed) unless ``from_owner`` still owns the
        band and ``to_member`` is a member."""
        async with self._pool.acquire() as conn, conn.transaction():
            band = await conn.fetchrow(SELECT_BAND_FOR_UPDATE, band_id)
            if band is None or str(band["owner_id"]) != from_owner:
                return None
            if await conn.fetchval(SELECT_MEMBER_ROLE, band_id, to_member) is None:
                return None
            await conn.execute(DEMOTE_OWNER, band_id, from_owner)
            await conn.execute(PROMOTE_TO_OWNER, band_id, to_member)
            await conn.execute(UPDATE_BAND_OWNER, band_id, to_member)
            row = await conn.fetchrow(SELECT_BAND, band_id)
            return (await with_members(conn, [band_of(row)]))[0]
