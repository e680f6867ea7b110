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


SELECT_HELD_MESSAGE = """
SELECT m.id, m.sender_id, m.band_id, i.conversation_id, m.relates_type, m.ts,
       m.deleted_at IS NOT NULL AS deleted
FROM inbox i JOIN messages m ON m.id = i.message_id
WHERE i.user_id = $1 AND i.message_id = $2
"""


def _related(row: asyncpg.Record) -> RelatedMessage:
    return RelatedMessage(
        id=str(row["id"]),
        sender_id=str(row["sender_id"]),
        band_id=str(row["band_id"]) if row["band_id"] else None,
        conversation_id=str(row["conversation_id"]),
        relates_type=row["relates_type"],
        ts=row["ts"],
        deleted=row["deleted"],
    )


@translates_failures
class MessageLifecycleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def held_message(self, user_id: str, message_id: str) -> RelatedMessage | None:
        """The message if ``user_id`` holds a copy of it (sent or received), else None."""
        row = await self._pool.fetchrow(SELECT_HELD_MESSAGE, user_id, message_id)
        return _related(row) if row else None
