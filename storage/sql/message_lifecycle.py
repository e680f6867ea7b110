"""What a message's later life needs: the message another one relates to (a reaction, a
reply, an edit), and deleting a message for everyone."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures


@dataclass(frozen=True, slots=True)
class RelatedMessage:
    """A message as one user holding a copy of it sees it."""

    id: str
    sender_id: str
    band_id: str | None
    conversation_id: str
    relates_type: str | None
    ts: int
    deleted: bool
    band_role: str | None  # the holder's role in the message's band, if any


SELECT_HELD_MESSAGE = """
SELECT m.id, m.sender_id, m.band_id, i.conversation_id, m.relates_type, m.ts,
       m.deleted_at IS NOT NULL AS deleted,
       (SELECT b.role FROM band_members b WHERE b.band_id = m.band_id AND b.user_id = $1)
           AS band_role
FROM inbox i JOIN messages m ON m.id = i.message_id
WHERE i.user_id = $1 AND i.message_id = $2
"""
# Deleting for everyone, in one transaction: the message (and its edits) are marked, every
# copy of them loses its ciphertext and nonce (erased, not flagged), and each holder of a
# copy of the original gets a tombstone copy numbered by their sequence.
MARK_DELETED = """
UPDATE messages SET deleted_at = $2, deleted_by = $3
WHERE (id = $1 OR (relates_to = $1 AND relates_type = 'edit')) AND deleted_at IS NULL
RETURNING id, sender_id, recipient_id, band_id
"""
ERASE_COPIES = """
UPDATE inbox SET ciphertext = '', nonce = ''
WHERE message_id = ANY($1::uuid[]) AND octet_length(ciphertext) > 0
"""
# Attachments go with their message (and its edits): unreachable at once, their bytes
# removed by the sweep.
MARK_ATTACHMENTS_DELETED = """
UPDATE attachments SET deleted_at = $2
WHERE message_id = ANY($1::uuid[]) AND deleted_at IS NULL
"""
SELECT_HOLDERS = """
SELECT user_id, conversation_id, encrypted_for FROM inbox WHERE message_id = $1
ORDER BY user_id
"""
INSERT_TOMBSTONE = """
INSERT INTO messages (id, sender_id, sender_device, recipient_id, band_id, ts,
                      relates_type, relates_to)
VALUES ($1, $2, $3, $4, $5, $6, 'delete', $7)
"""
TAKE_NEXT_SEQS = """
WITH locked AS MATERIALIZED (
    SELECT user_id FROM user_seqs WHERE user_id = ANY($1::uuid[])
    ORDER BY user_id FOR UPDATE
)
UPDATE user_seqs s SET last_seq = s.last_seq + 1 FROM locked l
WHERE s.user_id = l.user_id
RETURNING s.user_id, s.last_seq
"""
INSERT_TOMBSTONE_COPIES = """
INSERT INTO inbox (user_id, seq, message_id, sender_id, band_id, conversation_id,
                   encrypted_for, ciphertext, nonce, ts, relates_type, relates_to)
SELECT c.user_id, c.seq, $3, $4, $5, c.conversation_id, c.encrypted_for, '', '', $6,
       'delete', $7
FROM unnest($1::uuid[], $2::bigint[], $8::uuid[], $9::uuid[])
     AS c(user_id, seq, conversation_id, encrypted_for)
"""


@dataclass(frozen=True, slots=True)
class Tombstone:
    """One holder's tombstone of a deleted message: ``seq`` is theirs."""

    user_id: str
    seq: int
    message_id: str
    deleted_by: str
    ts: int


def _related(row: asyncpg.Record) -> RelatedMessage:
    return RelatedMessage(
        id=str(row["id"]),
        sender_id=str(row["sender_id"]),
        band_id=str(row["band_id"]) if row["band_id"] else None,
        conversation_id=str(row["conversation_id"]),
        relates_type=row["relates_type"],
        ts=row["ts"],
        deleted=row["deleted"],
        band_role=row["band_role"],
    )


@translates_failures
class MessageLifecycleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def held_message(self, user_id: str, message_id: str) -> RelatedMessage | None:
        """The message if ``user_id`` holds a copy of it (sent or received), else None."""
        row = await self._pool.fetchrow(SELECT_HELD_MESSAGE, user_id, message_id)
        return _related(row) if row else None

    async def delete_for_everyone(
        self, message_id: str, deleter_id: str, deleter_device: str, tombstone_id: str, now_ms: int
    ) -> list[Tombstone]:
        """Erase the message and its edits (their attachments marked deleted) and number a
        tombstone for every holder; nothing
        (an empty list) when it was already deleted, so deleting again changes nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            marked = await conn.fetch(MARK_DELETED, message_id, now_ms, deleter_id)
            original = next((r for r in marked if str(r["id"]) == message_id), None)
            if original is None:
                return []
            await conn.execute(ERASE_COPIES, [r["id"] for r in marked])
            await conn.execute(MARK_ATTACHMENTS_DELETED, [r["id"] for r in marked], now_ms)
            holders = await conn.fetch(SELECT_HOLDERS, message_id)
            await conn.execute(
                INSERT_TOMBSTONE,
                tombstone_id,
                deleter_id,
                deleter_device,
                original["recipient_id"],
                original["band_id"],
                now_ms,
                message_id,
            )
            users = [h["user_id"] for h in holders]
            seqs = {r["user_id"]: r["last_seq"] for r in await conn.fetch(TAKE_NEXT_SEQS, users)}
            await conn.execute(
                INSERT_TOMBSTONE_COPIES,
                users,
                [seqs[u] for u in users],
                tombstone_id,
                deleter_id,
                original["band_id"],
                now_ms,
                message_id,
                [h["conversation_id"] for h in holders],
                [h["encrypted_for"] for h in holders],
            )
        return [Tombstone(str(u), seqs[u], message_id, deleter_id, now_ms) for u in users]
