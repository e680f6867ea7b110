"""What the other capabilities hand to push: stored messages (from the send queue's
deliverer, after the commit and beside the socket fan-out), a call's notices, a read that
changed the badge, a deletion. Each is one job on the shared stream: one Redis round trip
per batch, never a lookup per message, and nothing on the send path itself.

``NoPushes`` stands in when no provider is configured: nothing is built or queued at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.calls.rules import Notice
from hub.calls.state import CallState
from hub.clock import Clock
from hub.push.jobs import (
    BadgeChanged,
    CallEnded,
    CallEndReason,
    CallRinging,
    Job,
    MessageDeleted,
    MessageItem,
    MessagesStored,
    encode_job,
)
from storage.redis.keys import RedisKeys
from storage.redis.push_queue import RedisPushQueue

ITEMS_PER_JOB = 500
CALL_OVER_TTL_MS = 15 * 60_000
# The socket notices after which a callee's phone must stop ringing, and why.
ENDED_BY: dict[str, CallEndReason] = {
    "call:cancelled": "cancelled",
    "call:missed": "missed",
    "call:answered_elsewhere": "answered_elsewhere",
    "call:declined": "declined",
}


class NoPushes:
    enabled = False

    async def messages_stored(self, items: Sequence[MessageItem]) -> None:
        return None

    async def call_notices(self, state: CallState, notices: Sequence[Notice]) -> None:
        return None

    async def badge_changed(self, user_id: str) -> None:
        return None

    async def message_deleted(self, message_id: str, users: Sequence[str]) -> None:
        return None


class PushQueueWriter:
    enabled = True

    def __init__(self, queue: RedisPushQueue, keys: RedisKeys, clock: Clock) -> None:
        self._queue = queue
        self._keys = keys
        self._clock = clock

    async def messages_stored(self, items: Sequence[MessageItem]) -> None:
        jobs: list[Job] = [
            MessagesStored(tuple(items[i : i + ITEMS_PER_JOB]))
            for i in range(0, len(items), ITEMS_PER_JOB)
        ]
        await self._queue.add([encode_job(j) for j in jobs])

    async def call_notices(self, state: CallState, notices: Sequence[Notice]) -> None:
        """``call:incoming`` rings the callees' offline phones; a notice that stops the
        ringing stops it there too (and drops a ring still queued)."""
        now = self._clock()
        jobs: list[Job] = []
        for notice in notices:
            if notice.event == "call:incoming":
                fields = {
                    "callId": state.id,
                    "from": state.caller,
                    "instance": state.instance,
                    "media": state.media,
                    "expiresAt": state.ring_deadline,
                }
                if state.band is not None:
                    fields["band"] = state.band
                jobs.append(CallRinging(notice.users, state.id, fields, state.ring_deadline, now))
            elif notice.event in ENDED_BY:
                jobs.append(CallEnded(notice.users, state.id, ENDED_BY[notice.event], now))
        if state.phase == "ended":
            await self._queue.mark(self._keys.push_call_over(state.id), CALL_OVER_TTL_MS)
        await self._queue.add([encode_job(j) for j in jobs])

    async def badge_changed(self, user_id: str) -> None:
        await self._queue.add([encode_job(BadgeChanged(user_id, self._clock()))])

    async def message_deleted(self, message_id: str, users: Sequence[str]) -> None:
        await self._queue.add([encode_job(MessageDeleted(tuple(users), message_id, self._clock()))])
