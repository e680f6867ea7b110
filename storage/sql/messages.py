"""Encrypted messages, each user's numbered copies of them, and receipts.

A message is stored once (its client id makes a resend idempotent) and copied once per user
who may read it, numbered by that user's gapless sequence taken in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import cast

import asyncpg

from storage.failures import translates_failures
from storage.sql.attachments import bind_attachments
from storage.sql.consent import (
    REFUSED_VERDICTS,
    ConsentDecision,
    ConsentRaced,
    ConsentRule,
    decide_direct_sends,
)
from storage.sql.message_rows import (
    COPY_COLUMNS,
    ConversationSummary,
    MissingUser,
    NewMessage,
    OriginalDeleted,
    ReceiptChange,
    SendOutcome,
    StoredCopy,
    StoredMessage,
    copy_of,
    message_of,
)

INSERT_MESSAGES_IF_NEW = """
INSERT INTO messages (id, sender_id, sender_device, recipient_id, band_id, ts,
                      relates_type, relates_to)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::bigint[],
                     $7::text[], $8::uuid[])
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
INSERT_DIRECT_CONVERSATIONS = """
INSERT INTO direct_conversations (user_low, user_high, created_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[])
ON CONFLICT DO NOTHING
"""
# Edits hold their originals with a share lock for the batch, so a delete committing
# meanwhile either finishes first (and the edit is refused) or waits for the edit and then
# erases it too. Taken first, before any other lock of the batch.
LOCK_LIVE_ORIGINALS = """
SELECT id FROM messages WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL FOR SHARE
"""
SELECT_MESSAGES = """
SELECT id, sender_id, recipient_id, band_id, ts FROM messages WHERE id = ANY($1::uuid[])
"""
# Sequence rows are locked in user-id order, so concurrent batches never deadlock; each user's
# counter moves by the number of copies the batch holds for them.
TAKE_SEQ_RANGES = """
WITH wanted AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[]) AS w(user_id, n)
), locked AS MATERIALIZED (
    SELECT s.user_id FROM user_seqs s JOIN wanted w ON w.user_id = s.user_id
    ORDER BY s.user_id FOR UPDATE OF s
)
UPDATE user_seqs AS s SET last_seq = s.last_seq + w.n
FROM wanted w, locked l
WHERE s.user_id = w.user_id AND l.user_id = s.user_id
RETURNING s.user_id, s.last_seq
"""
INSERT_COPIES = """
INSERT INTO inbox (user_id, seq, message_id, sender_id, band_id, conversation_id,
                   encrypted_for, ciphertext, nonce, ts, relates_type, relates_to, request)
SELECT c.user_id, c.seq, c.message_id, c.sender_id, c.band_id, COALESCE(c.band_id, c.peer),
       c.peer, c.ciphertext, c.nonce, c.ts, c.relates_type, c.relates_to, c.request
FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[],
            $7::bytea[], $8::bytea[], $9::bigint[], $10::text[], $11::uuid[], $12::bool[])
     AS c(user_id, seq, message_id, sender_id, band_id, peer, ciphertext, nonce, ts,
          relates_type, relates_to, request)
"""
# A message the consent rule refused after its row went in (new rows are only known then).
DELETE_REFUSED = "DELETE FROM messages WHERE id = ANY($1::uuid[])"
CONSENT_ATTEMPTS = 5
# A catch-up page, bounded by rows ($3) and by ciphertext bytes ($4) in the database: the
# sizes come first (octet_length reads a stored value's length without loading it), the
# page ends at the last copy that still fits (the first always does), and only then are
# the bodies of the copies kept read. ``more`` is true when a copy follows the page.
SELECT_COPIES_AFTER_BOUNDED = f"""
WITH sized AS MATERIALIZED (
    SELECT seq, row_number() OVER w AS n, sum(octet_length(ciphertext)) OVER w AS running
    FROM inbox WHERE user_id = $1 AND seq > $2
    WINDOW w AS (ORDER BY seq ROWS UNBOUNDED PRECEDING)
    ORDER BY seq LIMIT $3 + 1
), cut AS (
    SELECT max(seq) FILTER (WHERE n <= $3 AND (n = 1 OR running <= $4)) AS last FROM sized
)
SELECT {COPY_COLUMNS}, EXISTS (SELECT 1 FROM sized WHERE sized.seq > cut.last) AS more
FROM inbox, cut
WHERE user_id = $1 AND seq > $2 AND seq <= cut.last
ORDER BY seq
"""
SELECT_CONVERSATION_BEFORE = f"""
SELECT {COPY_COLUMNS} FROM inbox
WHERE user_id = $1 AND conversation_id = $2 AND seq < $3
  AND (relates_type IS NULL OR relates_type IN ('reaction', 'reply'))
ORDER BY seq DESC LIMIT $4
"""
# History shows an original with its latest edit, so edits are not listed on their own.
SELECT_LATEST_EDITS = f"""
SELECT DISTINCT ON (relates_to) {COPY_COLUMNS} FROM inbox
WHERE user_id = $1 AND relates_to = ANY($2::uuid[]) AND relates_type = 'edit'
ORDER BY relates_to, seq DESC
"""
# A conversation's position in the list is the user's seq of its last copy: unique per user,
# so it pages without ties ($2: the position the previous page ended at).
SELECT_LAST_COPY_PER_CONVERSATION = f"""
SELECT * FROM (
    SELECT DISTINCT ON (conversation_id) {COPY_COLUMNS} FROM inbox
    WHERE user_id = $1 AND relates_type IS DISTINCT FROM 'delete'
    ORDER BY conversation_id, seq DESC
) AS last WHERE seq < $2 ORDER BY seq DESC LIMIT $3
"""
COUNT_UNREAD_PER_CONVERSATION = """
SELECT conversation_id, count(*) AS unread FROM inbox
WHERE user_id = $1 AND conversation_id = ANY($2::uuid[])
  AND read_at IS NULL AND sender_id <> $1
  AND (relates_type IS NULL OR relates_type = 'reply')
GROUP BY conversation_id
"""
# Above every seq: "from the newest" for the lists that page backwards.
NEWEST = 2**62
# Marks only when every id is one the user received (not sent): ``mine`` lists those, and
# the update runs only if it holds them all. One round trip answers both questions.
_MARK_RECEIVED = """
WITH mine AS (
    SELECT message_id FROM inbox
    WHERE user_id = $1 AND message_id = ANY($2::uuid[]) AND sender_id <> $1
), changed AS (
    UPDATE inbox SET {assignments}
    WHERE user_id = $1 AND message_id = ANY($2::uuid[]) AND sender_id <> $1
      AND {unset_column} IS NULL
      AND (SELECT count(*) FROM mine) = cardinality($2::uuid[])
    RETURNING message_id, sender_id
)
SELECT true AS changed, message_id, sender_id FROM changed
UNION ALL
SELECT false, message_id, NULL FROM mine
"""
MARK_DELIVERED = _MARK_RECEIVED.format(assignments="delivered_at = $3", unset_column="delivered_at")
MARK_READ = _MARK_RECEIVED.format(
    assignments="read_at = $3, delivered_at = COALESCE(delivered_at, $3)", unset_column="read_at"
)


@translates_failures
class MessageStore:
    """``consent`` decides direct messages (requests, blocks); without one (store tests)
    every direct conversation is an accepted one."""

    def __init__(self, pool: asyncpg.Pool, consent: ConsentRule | None = None) -> None:
        self._pool = pool
        self._consent = consent

    async def insert_batch(self, batch: Sequence[NewMessage]) -> list[SendOutcome]:
        """Store many messages and their numbered copies in one transaction (group commit).

        Each user's copies are numbered in the order of ``batch`` (the order the hub received
        the sends), so a burst keeps its order. A message whose id already exists comes back
        with no copies (a resend). Raises
        ``MissingUser`` when any recipient does not exist, storing nothing; the caller then
        retries the messages one by one to find the culprit.
        """
        for _ in range(CONSENT_ATTEMPTS - 1):
            try:
                return await self._insert_batch_once(batch)
            except ConsentRaced:
                continue  # a conversation changed under the batch: decide again, fresh
        return await self._insert_batch_once(batch)

    async def _insert_batch_once(self, batch: Sequence[NewMessage]) -> list[SendOutcome]:
        fresh = list({m.id: m for m in batch}.values())  # in submission order
        # Rows are inserted in id order, a stable lock order against a concurrent batch
        # holding the same ids (a resend on another node); copies are numbered in
        # submission order below, and the seq rows are locked in user-id order.
        by_id = sorted(fresh, key=lambda m: m.id)
        decision = ConsentDecision({}, (), ())
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                originals = sorted(
                    {cast("str", m.relates_to) for m in fresh if m.relates_type == "edit"}
                )
                if originals:
                    live = await conn.fetch(LOCK_LIVE_ORIGINALS, originals)
                    if len(live) != len(originals):
                        raise OriginalDeleted
                inserted_rows = await conn.fetch(
                    INSERT_MESSAGES_IF_NEW,
                    [m.id for m in by_id],
                    [m.sender_id for m in by_id],
                    [m.sender_device for m in by_id],
                    [m.recipient_id for m in by_id],
                    [m.band_id for m in by_id],
                    [m.ts for m in by_id],
                    [m.relates_type for m in by_id],
                    [m.relates_to for m in by_id],
                )
                inserted = {str(r["id"]) for r in inserted_rows}
                new = [m for m in fresh if m.id in inserted]
                existing: dict[str, StoredMessage] = {}
                if len(new) < len(fresh):
                    rows = await conn.fetch(
                        SELECT_MESSAGES, [m.id for m in fresh if m.id not in inserted]
                    )
                    existing = {str(r["id"]): message_of(r) for r in rows}
                decision = await self._decide(conn, new)
                refused = [m.id for m in new if decision.verdicts.get(m.id) in REFUSED_VERDICTS]
                if refused:
                    await conn.execute(DELETE_REFUSED, refused)
                    new = [m for m in new if m.id not in set(refused)]
                requests = {i for i, v in decision.verdicts.items() if v == "request"}
                await bind_attachments(conn, new)
                copies = await self._number_and_insert(conn, new, requests)
        except asyncpg.ForeignKeyViolationError:
            raise MissingUser from None
        accepted = {(m, r) for m, r in decision.accepted}
        outcomes: list[SendOutcome] = []
        for message in batch:
            stored = StoredMessage(
                message.id, message.sender_id, message.recipient_id, message.band_id, message.ts
            )
            verdict = decision.verdicts.get(message.id)
            if message.id in existing:
                outcomes.append(SendOutcome(existing[message.id], []))
            elif verdict in REFUSED_VERDICTS:
                outcomes.append(SendOutcome(stored, [], refusal=verdict))
            else:
                pair = (message.sender_id, message.recipient_id)
                outcomes.append(
                    SendOutcome(
                        stored,
                        copies.pop(message.id, []),
                        accepted_request=pair[1] if pair in accepted else None,
                    )
                )
                accepted.discard(pair)  # told once per batch
        return outcomes

    async def _decide(self, conn: asyncpg.Connection, new: Sequence[NewMessage]) -> ConsentDecision:
        """The consent rule's verdicts on the new direct messages; without a rule the old
        behaviour: every pair's conversation simply exists."""
        direct = [m for m in new if m.recipient_id is not None]
        if not direct:
            return ConsentDecision({}, (), ())
        if self._consent is not None:
            sends = [(m.id, m.sender_id, cast("str", m.recipient_id)) for m in direct]
            return await decide_direct_sends(conn, self._consent, sends, direct[0].ts)
        pairs = sorted(
            {
                tuple(sorted((m.sender_id, cast("str", m.recipient_id)))): m.ts for m in direct
            }.items()
        )
        await conn.execute(
            INSERT_DIRECT_CONVERSATIONS,
            [p[0][0] for p in pairs],
            [p[0][1] for p in pairs],
            [p[1] for p in pairs],
        )
        return ConsentDecision({}, (), ())

    @staticmethod
    async def _number_and_insert(
        conn: asyncpg.Connection, messages: Sequence[NewMessage], requests: set[str]
    ) -> dict[str, list[StoredCopy]]:
        if not messages:
            return {}
        wanted = Counter(c.user_id for m in messages for c in m.copies)
        users = sorted(wanted)
        rows = await conn.fetch(TAKE_SEQ_RANGES, users, [wanted[u] for u in users])
        if len(rows) != len(users):
            raise MissingUser
        next_seq = {str(r["user_id"]): r["last_seq"] - wanted[str(r["user_id"])] for r in rows}
        out: dict[str, list[StoredCopy]] = {}
        for m in messages:
            stored_copies = []
            for c in m.copies:
                next_seq[c.user_id] += 1
                stored_copies.append(
                    StoredCopy(
                        user_id=c.user_id,
                        seq=next_seq[c.user_id],
                        message_id=m.id,
                        sender_id=m.sender_id,
                        band_id=m.band_id,
                        conversation_id=m.band_id or c.peer,
                        peer=c.peer,
                        ciphertext=c.ciphertext,
                        nonce=c.nonce,
                        ts=m.ts,
                        relates_type=m.relates_type,
                        relates_to=m.relates_to,
                        request=m.id in requests and c.user_id != m.sender_id,
                    )
                )
            out[m.id] = stored_copies
        flat = [c for copies in out.values() for c in copies]
        await conn.execute(
            INSERT_COPIES,
            [c.user_id for c in flat],
            [c.seq for c in flat],
            [c.message_id for c in flat],
            [c.sender_id for c in flat],
            [c.band_id for c in flat],
            [c.peer for c in flat],
            [c.ciphertext for c in flat],
            [c.nonce for c in flat],
            [c.ts for c in flat],
            [c.relates_type for c in flat],
            [c.relates_to for c in flat],
            [c.request for c in flat],
        )
        return out

    async def copies_after(
        self, user_id: str, after_seq: int, limit: int, max_bytes: int
    ) -> tuple[list[StoredCopy], bool]:
        """The user's copies with ``seq > after_seq`` in order: at most ``limit`` of them and
        at most ``max_bytes`` of ciphertext (but always the first), and whether more follow.
        Bodies beyond the page are never read."""
        rows = await self._pool.fetch(
            SELECT_COPIES_AFTER_BOUNDED, user_id, after_seq, limit, max_bytes
        )
        return [copy_of(r) for r in rows], bool(rows) and bool(rows[0]["more"])

    async def conversation_before(
        self, user_id: str, conversation_id: str, before_seq: int | None, limit: int
    ) -> list[StoredCopy]:
        """The user's copies in one conversation with ``seq < before_seq`` (None: from the
        newest), newest first."""
        before = NEWEST if before_seq is None else before_seq
        rows = await self._pool.fetch(
            SELECT_CONVERSATION_BEFORE, user_id, conversation_id, before, limit
        )
        return [copy_of(r) for r in rows]

    async def latest_edits(self, user_id: str, message_ids: list[str]) -> dict[str, StoredCopy]:
        """The user's copy of the latest edit of each of ``message_ids`` that has one."""
        rows = await self._pool.fetch(SELECT_LATEST_EDITS, user_id, message_ids)
        edits = [copy_of(r) for r in rows]
        return {cast("str", e.relates_to): e for e in edits}

    async def conversations(
        self, user_id: str, before_seq: int | None, limit: int
    ) -> list[ConversationSummary]:
        """The user's conversations whose last copy has ``seq < before_seq`` (None: all),
        the most recent first, each with its last copy and how many are unread."""
        before = NEWEST if before_seq is None else before_seq
        async with self._pool.acquire() as conn:
            last_rows = await conn.fetch(SELECT_LAST_COPY_PER_CONVERSATION, user_id, before, limit)
            if not last_rows:
                return []
            shown = [row["conversation_id"] for row in last_rows]
            unread_rows = await conn.fetch(COUNT_UNREAD_PER_CONVERSATION, user_id, shown)
        unread = {str(r["conversation_id"]): int(r["unread"]) for r in unread_rows}
        out = []
        for row in last_rows:
            last = copy_of(row)
            out.append(
                ConversationSummary(
                    last.conversation_id, last.band_id, last, unread.get(last.conversation_id, 0)
                )
            )
        return out

    async def mark_received(
        self, user_id: str, message_ids: list[str], *, status: str, now_ms: int
    ) -> tuple[set[str], list[ReceiptChange]]:
        """Set delivered or read (read implies delivered) on messages the user received.

        ``message_ids`` must be distinct. Returns the ids the user received and what changed
        now; when some id is not one the user received, nothing is changed.
        """
        query = MARK_READ if status == "read" else MARK_DELIVERED
        rows = await self._pool.fetch(query, user_id, message_ids, now_ms)
        received = {str(r["message_id"]) for r in rows if not r["changed"]}
        changes = [
            ReceiptChange(str(r["message_id"]), str(r["sender_id"])) for r in rows if r["changed"]
        ]
        return received, changes
