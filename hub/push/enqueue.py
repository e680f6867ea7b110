"""What the other capabilities hand to push: stored messages (from the send queue's
deliverer, after the commit and beside the socket fan-out), a call's notices, a read that
changed the badge, a deletion. Each is one job on the shared stream: one Redis round trip
per batch, never a lookup per message, and nothing on the send path itself. Only users who
may hold a push token are queued for (``hub/push/audience.py``): a batch whose recipients
hold none costs a set lookup per copy and no round trip.

``NoPushes`` stands in when no provider is configured: nothing is built or queued at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hub.calls.rules import Notice
from hub.calls.state import CallState
from hub.clock import Clock
from hub.metrics import HubMetrics
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


# The label of each fan-out job kind in ``hub_push_jobs_queued`` (as on the wire).
QUEUED_LABEL: dict[type, str] = {
    MessagesStored: "messages",
    CallRinging: "call",
    CallEnded: "call_ended",
    BadgeChanged: "badge",
    MessageDeleted: "deleted",
}


class Audience(Protocol):
    def includes(self, user_id: str) -> bool: ...


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

    def __init__(
        self,
        queue: RedisPushQueue,
        keys: RedisKeys,
        clock: Clock,
        audience: Audience,
        metrics: HubMetrics,
    ) -> None:
        self._queue = queue
        self._keys = keys
        self._clock = clock
        self._audience = audience
        self._queued = metrics.push_jobs_queued

    async def _add(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        await self._queue.add([encode_job(j) for j in jobs])
        for job in jobs:
            self._queued.labels(QUEUED_LABEL[type(job)]).inc()

    async def messages_stored(self, items: Sequence[MessageItem]) -> None:
        includes = self._audience.includes
        items = [item for item in items if includes(item.user_id)]
        if not items:
            return
        jobs: list[Job] = [
            MessagesStored(tuple(items[i : i + ITEMS_PER_JOB]))
            for i in range(0, len(items), ITEMS_PER_JOB)
        ]
        await self._add(jobs)

    async def call_notices(self, state: CallState, notices: Sequence[Notice]) -> None:
        """``call:incoming`` rings the callees' offline phones; a notice that stops the
        ringing stops it there too (and drops a ring still queued)."""
        now = self._clock()
        jobs: list[Job] = []
        for notice in notices:
            users = tuple(u for u in notice.users if self._audience.includes(u))
            if not users:
                continue
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
                jobs.append(CallRinging(users, state.id, fields, state.ring_deadline, now))
            elif notice.event in ENDED_BY:
                jobs.append(CallEnded(users, state.id, ENDED_BY[notice.event], now))
        if state.phase == "ended":
            await self._queue.mark(self._keys.push_call_over(state.id), CALL_OVER_TTL_MS)
        await self._add(jobs)

    async def badge_changed(self, user_id: str) -> None:
        if self._audience.includes(user_id):
            await self._add([BadgeChanged(user_id, self._clock())])

    async def message_deleted(self, message_id: str, users: Sequence[str]) -> None:
        pushed = tuple(u for u in users if self._audience.includes(u))
        if pushed:
            await self._add([MessageDeleted(pushed, message_id, self._clock())])
