"""Attachments' rows: who uploaded how many bytes for which conversation, the message each
is bound to, and what the sweep may remove. Binding (``bind_attachments``) runs inside the
send's transaction (``storage/sql/messages.py``); deleting, inside the delete's
(``storage/sql/message_lifecycle.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures
from storage.sql.message_rows import AttachmentNotBindable, NewMessage

# One uploader's reservations are serialized (a transaction-scoped advisory lock on the
# user), so two concurrent requests cannot both pass the quota.
LOCK_UPLOADER = "SELECT pg_advisory_xact_lock(hashtextextended('attachments:' || $1::text, 0))"
SUM_RESERVED_SINCE = """
SELECT coalesce(sum(size), 0) AS used, min(created_at) AS oldest FROM attachments
WHERE uploader_id = $1 AND created_at > $2
"""
INSERT_ATTACHMENT = """
INSERT INTO attachments (id, uploader_id, conversation_id, size, created_at)
VALUES ($1, $2, $3, $4, $5)
"""
# What a user may download: their own upload before it is bound, or an attachment of a
# message they hold a copy of; never one deleted with its message.
SELECT_VISIBLE = """
SELECT a.id, a.uploader_id, a.conversation_id, a.size, a.message_id FROM attachments a
WHERE a.id = $2 AND a.deleted_at IS NULL AND a.removed_at IS NULL
  AND ((a.uploader_id = $1 AND a.message_id IS NULL)
       OR EXISTS (SELECT 1 FROM inbox i WHERE i.message_id = a.message_id AND i.user_id = $1))
"""
SELECT_MANY = """
SELECT id, uploader_id, conversation_id, size, message_id FROM attachments
WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL AND removed_at IS NULL
"""
# Claims what the sweep removes, in one statement, so a bind racing the sweep either
# commits first (and the row no longer qualifies) or finds it claimed (and the send is
# refused): never a bound attachment without bytes.
CLAIM_SWEEPABLE = """
UPDATE attachments SET removed_at = $3
WHERE id IN (
    SELECT id FROM attachments
    WHERE removed_at IS NULL
      AND (deleted_at IS NOT NULL OR (bound_at IS NULL AND created_at < $1))
    ORDER BY created_at LIMIT $2
) AND removed_at IS NULL
  AND (deleted_at IS NOT NULL OR (bound_at IS NULL AND created_at < $1))
RETURNING id, size
"""
UNCLAIM = "UPDATE attachments SET removed_at = NULL WHERE id = ANY($1::uuid[])"
DELETE_REMOVED_BEFORE = """
DELETE FROM attachments WHERE removed_at IS NOT NULL AND created_at < $1
"""


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    id: str
    uploader_id: str
    conversation_id: str
    size: int
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """``accepted`` False: the quota was reached; ``oldest_ms`` says when room frees up."""

    accepted: bool
    used: int
    oldest_ms: int | None


def _row(row: asyncpg.Record) -> AttachmentRow:
    return AttachmentRow(
        id=str(row["id"]),
        uploader_id=str(row["uploader_id"]),
        conversation_id=str(row["conversation_id"]),
        size=row["size"],
        message_id=str(row["message_id"]) if row["message_id"] else None,
    )


# An attachment is bound only if it is still the sender's, for this conversation (the peer
# or the band), unbound and not removed; the batch fails (and is retried message by
# message) when any is not, so an ack means stored and bound.
BIND_ATTACHMENTS = """
UPDATE attachments a SET message_id = b.message_id, bound_at = b.ts
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[])
     AS b(id, message_id, uploader_id, conversation_id, ts)
WHERE a.id = b.id AND a.uploader_id = b.uploader_id AND a.conversation_id = b.conversation_id
  AND a.message_id IS NULL AND a.bound_at IS NULL
  AND a.deleted_at IS NULL AND a.removed_at IS NULL
RETURNING a.id
"""


async def bind_attachments(conn: asyncpg.Connection, messages: Sequence[NewMessage]) -> None:
    """Bind the batch's attachments to their messages, inside the send's transaction; no
    query at all for a batch without attachments (the common send). ``AttachmentNotBindable``
    when any is no longer bindable: nothing of the batch is stored."""
    bindings = [(a, m) for m in messages for a in m.attachments]
    if not bindings:
        return
    bound = await conn.fetch(
        BIND_ATTACHMENTS,
        [a for a, _ in bindings],
        [m.id for _, m in bindings],
        [m.sender_id for _, m in bindings],
        [m.band_id or m.recipient_id for _, m in bindings],
        [m.ts for _, m in bindings],
    )
    if len(bound) != len(bindings):
        raise AttachmentNotBindable


@translates_failures
class AttachmentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def reserve(
        self,
        attachment_id: str,
        uploader_id: str,
        conversation_id: str,
        size: int,
        *,
        now_ms: int,
        quota_bytes: int,
        window_ms: int,
    ) -> Reservation:
        """Record a new upload of ``size`` bytes if the uploader's bytes reserved in the last
        ``window_ms`` leave room for it (removed ones still count: deleting gives no quota
        back)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_UPLOADER, uploader_id)
            row = await conn.fetchrow(SUM_RESERVED_SINCE, uploader_id, now_ms - window_ms)
            assert row is not None
            used, oldest = int(row["used"]), row["oldest"]
            if used + size > quota_bytes:
                return Reservation(False, used, oldest)
            await conn.execute(
                INSERT_ATTACHMENT, attachment_id, uploader_id, conversation_id, size, now_ms
            )
        return Reservation(True, used + size, oldest)

    async def visible(self, user_id: str, attachment_id: str) -> AttachmentRow | None:
        row = await self._pool.fetchrow(SELECT_VISIBLE, user_id, attachment_id)
        return _row(row) if row else None

    async def many(self, attachment_ids: list[str]) -> dict[str, AttachmentRow]:
        """The live (not deleted, not removed) attachments among ``attachment_ids``."""
        rows = await self._pool.fetch(SELECT_MANY, attachment_ids)
        return {str(r["id"]): _row(r) for r in rows}

    async def claim_sweepable(
        self, unbound_before_ms: int, now_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        """Mark removed (and return id, size of) the uploads never bound before
        ``unbound_before_ms`` and the attachments of deleted messages; the caller removes
        the bytes, or ``unclaim``s them when it could not."""
        rows = await self._pool.fetch(CLAIM_SWEEPABLE, unbound_before_ms, limit, now_ms)
        return [(str(r["id"]), int(r["size"])) for r in rows]

    async def unclaim(self, attachment_ids: list[str]) -> None:
        await self._pool.execute(UNCLAIM, attachment_ids)

    async def forget_removed_before(self, before_ms: int) -> int:
        """Delete the rows of removed attachments once they no longer count for a quota."""
        status = await self._pool.execute(DELETE_REMOVED_BEFORE, before_ms)
        return int(status.split()[-1])
