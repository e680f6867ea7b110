"""Consent between two users: the state of their direct conversation (a message request,
accepted, declined) and blocks.

The send path reads and writes conversation states inside its own transaction
(``read_pair_states`` / ``write_pair_states``, called by ``MessageStore.insert_batch``), so
a send to an accepted contact costs one statement per batch, the one that already created
the conversation row before requests existed. ``ConsentStore`` serves the request and block
routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import asyncpg

from storage.failures import translates_failures

ConversationStatus = Literal["pending", "accepted", "declined"]
# What the consent rule decides for one direct message of a batch.
Verdict = Literal["send", "request", "refused", "pending_full", "daily_full"]
REFUSED_VERDICTS: frozenset[Verdict] = frozenset({"refused", "pending_full", "daily_full"})


@dataclass(frozen=True, slots=True)
class PairState:
    """Two users as a message from ``sender`` to ``recipient`` finds them."""

    sender: str
    recipient: str
    status: ConversationStatus | None  # None: they never exchanged a direct message
    requester: str | None
    request_messages: int
    blocked: bool  # either blocked the other
    shares_band: bool  # read only when the conversation is not accepted
    opened_today: int  # requests ``sender`` opened in the last day (read only for new pairs)


@dataclass(frozen=True, slots=True)
class PairWrite:
    """The conversation of two users as a batch leaves it."""

    user_a: str
    user_b: str
    status: ConversationStatus
    requester: str | None  # kept from an existing row; set when the batch opens a request
    requested_at: int | None
    added_messages: int  # request messages the batch adds


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    verdicts: Mapping[str, Verdict]  # by message id
    writes: Sequence[PairWrite]
    accepted: Sequence[tuple[str, str]]  # (who accepted by replying, the requester)


class ConsentRule(Protocol):
    """Decides a batch's direct messages from their pairs' states (``hub.messaging``)."""

    @property
    def max_request_messages(self) -> int: ...

    def __call__(
        self,
        sends: Sequence[tuple[str, str, str]],
        states: Mapping[tuple[str, str], PairState],
        now_ms: int,
    ) -> ConsentDecision: ...


class ConsentRaced(Exception):
    """Another transaction changed a conversation this batch decided on: decide again."""


SELECT_PAIR_STATES = """
SELECT p.sender, p.recipient, dc.status, dc.requester,
       COALESCE(dc.request_messages, 0) AS request_messages,
       EXISTS (
           SELECT 1 FROM user_blocks k
           WHERE (k.blocker = p.sender AND k.blocked = p.recipient)
              OR (k.blocker = p.recipient AND k.blocked = p.sender)
       ) AS blocked,
       CASE WHEN dc.status IS DISTINCT FROM 'accepted' THEN EXISTS (
           SELECT 1 FROM band_members a JOIN band_members b ON a.band_id = b.band_id
           WHERE a.user_id = p.sender AND b.user_id = p.recipient
       ) ELSE false END AS shares_band,
       CASE WHEN dc.status IS NULL THEN (
           SELECT count(*) FROM direct_conversations r
           WHERE r.requester = p.sender AND r.requested_at > $3
       ) ELSE 0 END AS opened_today
FROM unnest($1::uuid[], $2::uuid[]) AS p(sender, recipient)
LEFT JOIN direct_conversations dc
       ON dc.user_low = LEAST(p.sender, p.recipient)
      AND dc.user_high = GREATEST(p.sender, p.recipient)
"""
# Written in pair order (a stable lock order). A conversation accepted meanwhile stays
# accepted; a request that another batch filled or that was declined meanwhile is not
# written (the row is not returned), and the batch decides again.
UPSERT_PAIR_STATES = """
INSERT INTO direct_conversations AS dc
       (user_low, user_high, created_at, status, requester, requested_at, request_messages)
SELECT LEAST(w.a, w.b), GREATEST(w.a, w.b), $3, w.status, w.requester, w.requested_at, w.added
FROM unnest($1::uuid[], $2::uuid[], $4::text[], $5::uuid[], $6::bigint[], $7::int[])
     AS w(a, b, status, requester, requested_at, added)
ORDER BY LEAST(w.a, w.b), GREATEST(w.a, w.b)
ON CONFLICT (user_low, user_high) DO UPDATE
SET status = CASE WHEN dc.status = 'accepted' THEN 'accepted' ELSE EXCLUDED.status END,
    request_messages = dc.request_messages + EXCLUDED.request_messages
WHERE EXCLUDED.status = 'accepted' OR dc.status = 'accepted'
   OR (dc.status = 'pending' AND dc.request_messages + EXCLUDED.request_messages <= $8)
RETURNING user_low
"""


async def read_pair_states(
    conn: asyncpg.Connection, pairs: Sequence[tuple[str, str]], day_ago_ms: int
) -> dict[tuple[str, str], PairState]:
    rows = await conn.fetch(
        SELECT_PAIR_STATES, [p[0] for p in pairs], [p[1] for p in pairs], day_ago_ms
    )
    states = {}
    for r in rows:
        state = PairState(
            sender=str(r["sender"]),
            recipient=str(r["recipient"]),
            status=r["status"],
            requester=str(r["requester"]) if r["requester"] else None,
            request_messages=r["request_messages"],
            blocked=r["blocked"],
            shares_band=r["shares_band"],
            opened_today=r["opened_today"],
        )
        states[(state.sender, state.recipient)] = state
    return states


async def write_pair_states(
    conn: asyncpg.Connection, writes: Sequence[PairWrite], now_ms: int, max_messages: int
) -> None:
    """Raises ``ConsentRaced`` when a conversation changed since it was read."""
    if not writes:
        return
    rows = await conn.fetch(
        UPSERT_PAIR_STATES,
        [w.user_a for w in writes],
        [w.user_b for w in writes],
        now_ms,
        [w.status for w in writes],
        [w.requester for w in writes],
        [w.requested_at for w in writes],
        [w.added_messages for w in writes],
        max_messages,
    )
    if len(rows) != len(writes):
        raise ConsentRaced


@dataclass(frozen=True, slots=True)
class RequestRow:
    user_id: str
    name: str
    first_message_at: int
    messages: int


@dataclass(frozen=True, slots=True)
class BlockRow:
    user_id: str
    name: str
    blocked_at: int


# Pending requests to $1, oldest first, leaving out anyone $1 blocked.
SELECT_REQUESTS_TO = """
SELECT dc.requester AS user_id, u.name, dc.requested_at, dc.request_messages
FROM direct_conversations dc JOIN users u ON u.id = dc.requester
WHERE (dc.user_low = $1 OR dc.user_high = $1) AND dc.status = 'pending' AND dc.requester <> $1
  AND NOT EXISTS (SELECT 1 FROM user_blocks k WHERE k.blocker = $1 AND k.blocked = dc.requester)
ORDER BY dc.requested_at, dc.requester
LIMIT $2
"""
# Answer the pending request $2 made to $1.
ANSWER_REQUEST = """
UPDATE direct_conversations SET status = $3
WHERE user_low = LEAST($1::uuid, $2::uuid) AND user_high = GREATEST($1::uuid, $2::uuid)
  AND status = 'pending' AND requester = $2
RETURNING user_low
"""
INSERT_BLOCK = """
INSERT INTO user_blocks (blocker, blocked, created_at) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""
DELETE_BLOCK = "DELETE FROM user_blocks WHERE blocker = $1 AND blocked = $2"
SELECT_BLOCKS_BY = """
SELECT k.blocked AS user_id, u.name, k.created_at
FROM user_blocks k JOIN users u ON u.id = k.blocked
WHERE k.blocker = $1 ORDER BY k.created_at DESC, k.blocked LIMIT $2
"""
BLOCKED_EITHER_WAY = """
SELECT EXISTS (
    SELECT 1 FROM user_blocks
    WHERE (blocker = $1 AND blocked = $2) OR (blocker = $2 AND blocked = $1)
)
"""


class UnknownUser(LookupError):
    """The user named does not exist."""


@translates_failures
class ConsentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def requests_to(self, user_id: str, limit: int) -> list[RequestRow]:
        rows = await self._pool.fetch(SELECT_REQUESTS_TO, user_id, limit)
        return [
            RequestRow(str(r["user_id"]), r["name"], r["requested_at"], r["request_messages"])
            for r in rows
        ]

    async def answer_request(self, user_id: str, requester: str, status: str) -> bool:
        """Accept or decline the pending request ``requester`` made; False when none."""
        row = await self._pool.fetchval(ANSWER_REQUEST, user_id, requester, status)
        return row is not None

    async def block(self, blocker: str, blocked: str, now_ms: int) -> bool:
        """False when it was already in place. Raises ``UnknownUser``."""
        try:
            result: str = await self._pool.execute(INSERT_BLOCK, blocker, blocked, now_ms)
        except asyncpg.ForeignKeyViolationError:
            raise UnknownUser(blocked) from None
        return result.endswith(" 1")

    async def unblock(self, blocker: str, blocked: str) -> None:
        await self._pool.execute(DELETE_BLOCK, blocker, blocked)

    async def blocks_by(self, blocker: str, limit: int) -> list[BlockRow]:
        rows = await self._pool.fetch(SELECT_BLOCKS_BY, blocker, limit)
        return [BlockRow(str(r["user_id"]), r["name"], r["created_at"]) for r in rows]


DAY_MS = 86_400_000


async def decide_direct_sends(
    conn: asyncpg.Connection,
    rule: ConsentRule,
    sends: Sequence[tuple[str, str, str]],
    now_ms: int,
) -> ConsentDecision:
    """Within the send's transaction: read the pairs of ``sends`` (message id, sender,
    recipient), let ``rule`` decide each message, and store how the conversations end up.
    Raises ``ConsentRaced`` when a conversation changed meanwhile."""
    pairs = list(dict.fromkeys((s[1], s[2]) for s in sends))
    states = await read_pair_states(conn, pairs, now_ms - DAY_MS)
    decision = rule(sends, states, now_ms)
    await write_pair_states(conn, decision.writes, now_ms, rule.max_request_messages)
    return decision
