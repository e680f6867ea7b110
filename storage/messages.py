"""Encrypted messages, each user's numbered copies of them, and receipts.

A message is stored once (its client id makes a resend idempotent) and copied once per user
who may read it, numbered by that user's gapless sequence taken in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


class MissingUser(Exception):
    """A recipient of the message does not exist; nothing was stored."""


@dataclass(frozen=True, slots=True)
class CopyToStore:
    """One user's copy: ``peer`` is whose public key opens it with that user's secret key."""

    user_id: str
    peer: str
    ciphertext: bytes
    nonce: bytes


@dataclass(frozen=True, slots=True)
class StoredCopy:
    user_id: str
    seq: int
    message_id: str
    sender_id: str
    band_id: str | None
    conversation_id: str
    peer: str
    ciphertext: bytes
    nonce: bytes
    ts: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    sender_id: str
    recipient_id: str | None
    band_id: str | None
    ts: int


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """``copies`` is empty when the message already existed (a resend)."""

    message: StoredMessage
    copies: list[StoredCopy]


@dataclass(frozen=True, slots=True)
class ReceiptChange:
    message_id: str
    sender_id: str


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    conversation_id: str
    band_id: str | None
    last: StoredCopy
    unread: int


INSERT_MESSAGE_IF_NEW = """
WITH new_message AS (
    INSERT INTO messages (id, sender_id, sender_device, recipient_id, band_id, ts)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), new_conversation AS (
    INSERT INTO direct_conversations (user_low, user_high, created_at)
    SELECT $7::uuid, $8::uuid, $6 FROM new_message WHERE $7::uuid IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM new_message
"""
SELECT_MESSAGE = "SELECT id, sender_id, recipient_id, band_id, ts FROM messages WHERE id = $1"
# Rows are locked in user-id order so two messages between the same users never deadlock.
TAKE_NEXT_SEQS = """
WITH locked AS MATERIALIZED (
    SELECT user_id FROM user_seqs WHERE user_id = ANY($1::uuid[]) ORDER BY user_id FOR UPDATE
)
UPDATE user_seqs AS s SET last_seq = s.last_seq + 1
FROM locked WHERE s.user_id = locked.user_id
RETURNING s.user_id, s.last_seq
"""
INSERT_COPIES = """
INSERT INTO inbox (user_id, seq, message_id, sender_id, band_id, conversation_id,
                   encrypted_for, ciphertext, nonce, ts)
SELECT c.user_id, c.seq, $1, $2, $3, COALESCE($3, c.peer), c.peer, c.ciphertext, c.nonce, $4
FROM unnest($5::uuid[], $6::bigint[], $7::uuid[], $8::bytea[], $9::bytea[])
     AS c(user_id, seq, peer, ciphertext, nonce)
"""
COPY_COLUMNS = (
    "user_id, seq, message_id, sender_id, band_id, conversation_id, encrypted_for, "
    "ciphertext, nonce, ts"
)
SELECT_COPIES_AFTER = f"""
SELECT {COPY_COLUMNS} FROM inbox WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""
SELECT_LAST_SEQ = "SELECT last_seq FROM user_seqs WHERE user_id = $1"
SELECT_CONVERSATION_BEFORE = f"""
SELECT {COPY_COLUMNS} FROM inbox
WHERE user_id = $1 AND conversation_id = $2 AND seq < $3
ORDER BY seq DESC LIMIT $4
"""
SELECT_LAST_COPY_PER_CONVERSATION = f"""
SELECT * FROM (
    SELECT DISTINCT ON (conversation_id) {COPY_COLUMNS} FROM inbox
    WHERE user_id = $1 ORDER BY conversation_id, seq DESC
) AS last ORDER BY seq DESC LIMIT $2
"""
COUNT_UNREAD_PER_CONVERSATION = """
SELECT conversation_id, count(*) AS unread FROM inbox
WHERE user_id = $1 AND read_at IS NULL AND sender_id <> $1
GROUP BY conversation_id
"""
SELECT_RECEIVED_IDS = """
SELECT message_id FROM inbox
WHERE user_id = $1 AND message_id = ANY($2::uuid[]) AND sender_id <> $1
"""
MARK_DELIVERED = """
UPDATE inbox SET delivered_at = $3
WHERE user_id = $1 AND message_id = ANY($2::uuid[]) AND sender_id <> $1 AND delivered_at IS NULL
RETURNING message_id, sender_id
"""
MARK_READ = """
UPDATE inbox SET read_at = $3, delivered_at = COALESCE(delivered_at, $3)
WHERE user_id = $1 AND message_id = ANY($2::uuid[]) AND sender_id <> $1 AND read_at IS NULL
RETURNING message_id, sender_id
"""


def _copy(row: asyncpg.Record) -> StoredCopy:
    band = row["band_id"]
    return StoredCopy(
        user_id=str(row["user_id"]),
        seq=row["seq"],
        message_id=str(row["message_id"]),
        sender_id=str(row["sender_id"]),
        band_id=str(band) if band else None,
        conversation_id=str(row["conversation_id"]),
        peer=str(row["encrypted_for"]),
        ciphertext=bytes(row["ciphertext"]),
        nonce=bytes(row["nonce"]),
        ts=row["ts"],
    )


def _message(row: asyncpg.Record) -> StoredMessage:
    return StoredMessage(
        id=str(row["id"]),
        sender_id=str(row["sender_id"]),
        recipient_id=str(row["recipient_id"]) if row["recipient_id"] else None,
        band_id=str(row["band_id"]) if row["band_id"] else None,
        ts=row["ts"],
    )


class MessageStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert_if_new(
        self,
        *,
        message_id: str,
        sender_id: str,
        sender_device: str,
        recipient_id: str | None,
        band_id: str | None,
        ts: int,
        copies: Sequence[CopyToStore],
    ) -> SendOutcome:
        """Store the message and its numbered copies in one transaction, or find the original."""
        low = high = None
        if recipient_id is not None:
            low, high = sorted((sender_id, recipient_id))
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                inserted = await conn.fetchval(
                    INSERT_MESSAGE_IF_NEW,
                    message_id,
                    sender_id,
                    sender_device,
                    recipient_id,
                    band_id,
                    ts,
                    low,
                    high,
                )
                if not inserted:
                    row = await conn.fetchrow(SELECT_MESSAGE, message_id)
                    return SendOutcome(_message(row), [])
                seqs = await self._number_and_insert(
                    conn, message_id, sender_id, band_id, ts, copies
                )
        except asyncpg.ForeignKeyViolationError:
            raise MissingUser from None
        stored = StoredMessage(message_id, sender_id, recipient_id, band_id, ts)
        return SendOutcome(
            stored,
            [
                StoredCopy(
                    user_id=c.user_id,
                    seq=seq,
                    message_id=message_id,
                    sender_id=sender_id,
                    band_id=band_id,
                    conversation_id=band_id or c.peer,
                    peer=c.peer,
                    ciphertext=c.ciphertext,
                    nonce=c.nonce,
                    ts=ts,
                )
                for c, seq in zip(copies, seqs, strict=True)
            ],
        )

    @staticmethod
    async def _number_and_insert(
        conn: asyncpg.Connection,
        message_id: str,
        sender_id: str,
        band_id: str | None,
        ts: int,
        copies: Sequence[CopyToStore],
    ) -> list[int]:
        seq_rows = await conn.fetch(TAKE_NEXT_SEQS, [c.user_id for c in copies])
        if len(seq_rows) != len(copies):
            raise MissingUser
        seq_of = {str(r["user_id"]): r["last_seq"] for r in seq_rows}
        seqs = [seq_of[c.user_id] for c in copies]
        await conn.execute(
            INSERT_COPIES,
            message_id,
            sender_id,
            band_id,
            ts,
            [c.user_id for c in copies],
            seqs,
            [c.peer for c in copies],
            [c.ciphertext for c in copies],
            [c.nonce for c in copies],
        )
        return seqs

    async def copies_after(self, user_id: str, after_seq: int, limit: int) -> list[StoredCopy]:
        rows = await self._pool.fetch(SELECT_COPIES_AFTER, user_id, after_seq, limit)
        return [_copy(r) for r in rows]

    async def last_seq(self, user_id: str) -> int:
        value = await self._pool.fetchval(SELECT_LAST_SEQ, user_id)
        return int(value or 0)

    async def conversation_before(
        self, user_id: str, conversation_id: str, before_seq: int, limit: int
    ) -> list[StoredCopy]:
        rows = await self._pool.fetch(
            SELECT_CONVERSATION_BEFORE, user_id, conversation_id, before_seq, limit
        )
        return [_copy(r) for r in rows]

    async def conversations(self, user_id: str, limit: int) -> list[ConversationSummary]:
        async with self._pool.acquire() as conn:
            last_rows = await conn.fetch(SELECT_LAST_COPY_PER_CONVERSATION, user_id, limit)
            unread_rows = await conn.fetch(COUNT_UNREAD_PER_CONVERSATION, user_id)
        unread = {str(r["conversation_id"]): int(r["unread"]) for r in unread_rows}
        out = []
        for row in last_rows:
            last = _copy(row)
            out.append(
                ConversationSummary(
                    last.conversation_id, last.band_id, last, unread.get(last.conversation_id, 0)
                )
            )
        return out

    async def received_ids(self, user_id: str, message_ids: list[str]) -> set[str]:
        """Which of these messages this user received (not sent)."""
        rows = await self._pool.fetch(SELECT_RECEIVED_IDS, user_id, message_ids)
        return {str(r["message_id"]) for r in rows}

    async def mark(
        self, user_id: str, message_ids: list[str], *, status: str, now_ms: int
    ) -> list[ReceiptChange]:
        """Set delivered or read (read implies delivered); returns only what changed now."""
        query = MARK_READ if status == "read" else MARK_DELIVERED
        rows = await self._pool.fetch(query, user_id, message_ids, now_ms)
        return [ReceiptChange(str(r["message_id"]), str(r["sender_id"])) for r in rows]
