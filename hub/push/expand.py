"""From a queued job to the pushes it makes: one per device that has a token for it and no
live socket on any node at this moment, each decided with facts read for the whole job at
once (tokens, live devices, mutes and badges: one round trip each, not one per message).

Message pushes are coalesced per device and conversation: the first of a burst goes at
once and opens a ``PUSH_COALESCE_MS`` window; the rest only replace the one push that is
sent when the window ends, with the badge as it is then.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from hub.clock import Clock
from hub.push.jobs import (
    BadgeChanged,
    CallEnded,
    CallRinging,
    DeviceJob,
    Job,
    MessageDeleted,
    MessageItem,
    MessagesStored,
    encode_job,
)
from hub.push.rules import MessageRecipient, wants_message_push
from storage.redis.keys import RedisKeys
from storage.redis.push_queue import RedisPushQueue
from storage.sql.push import NotificationStore, PushTokenRow, PushTokenStore


class LiveDevices(Protocol):
    async def devices_online_of(
        self, user_ids: Collection[str], *, now_ms: int
    ) -> dict[str, set[str]]:
        """The device ids with a live socket on any node, per user."""


@dataclass(frozen=True, slots=True)
class Planned:
    job: DeviceJob
    token: PushTokenRow
    badge: int | None = None


class PushPlanner:
    def __init__(
        self,
        *,
        queue: RedisPushQueue,
        keys: RedisKeys,
        tokens: PushTokenStore,
        notifications: NotificationStore,
        online: LiveDevices,
        clock: Clock,
        coalesce_ms: int,
    ) -> None:
        self.keys = keys
        self._queue = queue
        self._tokens = tokens
        self._notifications = notifications
        self._online = online
        self._clock = clock
        self._coalesce_ms = coalesce_ms

    async def fan_out(self, job: Job) -> list[Planned]:
        if isinstance(job, MessagesStored):
            return await self._messages(job.items)
        if isinstance(job, CallRinging):
            return await self._call(job)
        if isinstance(job, CallEnded):
            return await self._call_ended(job)
        if isinstance(job, BadgeChanged):
            return await self._badge(job)
        if isinstance(job, MessageDeleted):
            return await self._deleted(job)
        return []

    async def devices(self, jobs: Collection[DeviceJob]) -> list[Planned]:
        """Retries and bursts' last pushes, as many as one read brought: each device's token
        as it is now, if the device is still offline, with the badge of a message push; one
        query, one round trip and one query for all of them (these are most of the pushes
        of a busy conversation, one per coalescing window)."""
        if not jobs:
            return []
        rows = await self._tokens.tokens_of({j.user_id for j in jobs})
        token_of = {(r.user_id, r.device_id): r for r in rows}
        registered = [j for j in jobs if (j.user_id, j.device_id) in token_of]
        if not registered:
            return []
        online = await self._online.devices_online_of(
            {j.user_id for j in registered}, now_ms=self._clock()
        )
        offline = [j for j in registered if j.device_id not in online.get(j.user_id, ())]
        badged = {j.user_id for j in offline if j.kind == "message"}
        badges = await self._tokens.unread_counts(badged) if badged else {}
        return [
            Planned(
                j,
                token_of[(j.user_id, j.device_id)],
                badges.get(j.user_id, 0) if j.kind == "message" else None,
            )
            for j in offline
        ]

    async def _offline_tokens(self, users: Collection[str]) -> list[PushTokenRow]:
        rows = await self._tokens.tokens_of(users)
        if not rows:
            return []
        online = await self._online.devices_online_of(
            {r.user_id for r in rows}, now_ms=self._clock()
        )
        return [r for r in rows if r.device_id not in online.get(r.user_id, ())]

    async def _messages(self, items: Collection[MessageItem]) -> list[Planned]:
        rows = await self._tokens.tokens_of({i.user_id for i in items})
        if not rows:
            return []  # the common case: nobody in this batch has a push token
        now = self._clock()
        by_user: dict[str, list[PushTokenRow]] = {}
        for row in rows:
            by_user.setdefault(row.user_id, []).append(row)
        online = await self._online.devices_online_of(by_user, now_ms=now)
        muted = await self._notifications.muted_among(
            list(by_user), [i.conversation_id for i in items], now
        )
        # The last message per device and conversation: it is what a coalesced push shows.
        chosen: dict[tuple[str, str, str], tuple[MessageItem, PushTokenRow]] = {}
        for item in items:
            for row in by_user.get(item.user_id, ()):
                recipient = MessageRecipient(
                    item=item,
                    device_online=row.device_id in online.get(item.user_id, ()),
                    muted=(item.user_id, item.conversation_id) in muted,
                )
                if wants_message_push(recipient):
                    chosen[(item.user_id, row.device_id, item.conversation_id)] = (item, row)
        if not chosen:
            return []
        windows = list(chosen)
        left = await self._queue.take_windows(windows, self._coalesce_ms)
        now_jobs = []
        burst_ends = []  # the pushes that wait for their window's end: one round trip
        for window, wait_ms in zip(windows, left, strict=True):
            item, row = chosen[window]
            job = DeviceJob(
                item.user_id, row.device_id, "message", _message_fields(item), item.stored_at
            )
            if wait_ms == 0:
                now_jobs.append((job, row))
            else:
                last = DeviceJob(
                    job.user_id, job.device_id, "message", job.fields, job.at, window=window
                )
                job_id = "last:" + ":".join(window)
                burst_ends.append((job_id, encode_job(last), now + wait_ms, item.seq))
        await self._queue.schedule_latest(burst_ends)
        if not now_jobs:
            return []
        # The badge of a push that waits is counted when its window ends, not now.
        badges = await self._tokens.unread_counts({job.user_id for job, _ in now_jobs})
        return [Planned(job, row, badges.get(job.user_id, 0)) for job, row in now_jobs]

    async def _call(self, job: CallRinging) -> list[Planned]:
        if await self._queue.is_marked(self.keys.push_call_over(job.call_id)):
            return []
        planned = []
        for row in await self._offline_tokens(job.users):
            # iOS ends an app that gets a VoIP push without reporting a call: VoIP token only.
            voip = row.provider == "apns"
            if voip and row.voip_token is None:
                continue
            device_job = DeviceJob(
                row.user_id,
                row.device_id,
                "call",
                job.fields,
                job.at,
                expires_at=job.ring_deadline,
                voip=voip,
            )
            planned.append(Planned(device_job, row))
        return planned

    async def _call_ended(self, job: CallEnded) -> list[Planned]:
        reached = await self._queue.remembered(self.keys.push_call_devices(job.call_id))
        users = set(job.users)
        members = {tuple(m.split("|", 1)) for m in reached}
        fields = {"callId": job.call_id, "reason": job.reason}
        return [
            Planned(DeviceJob(row.user_id, row.device_id, "call_ended", fields, job.at), row)
            for row in await self._offline_tokens(users)
            if (row.user_id, row.device_id) in members
        ]

    async def _badge(self, job: BadgeChanged) -> list[Planned]:
        rows = await self._offline_tokens([job.user_id])
        if not rows:
            return []
        badge = (await self._tokens.unread_counts([job.user_id])).get(job.user_id, 0)
        return [
            Planned(DeviceJob(row.user_id, row.device_id, "badge", {}, job.at), row, badge)
            for row in rows
        ]

    async def _deleted(self, job: MessageDeleted) -> list[Planned]:
        key = self.keys.push_message_devices(job.message_id)
        reached = await self._queue.remembered(key)
        if not reached:
            return []
        await self._queue.forget(key)
        conversations: dict[tuple[str, str], str] = {}
        for member in reached:
            user, device, conversation_id = member.split("|", 2)
            conversations[(user, device)] = conversation_id
        planned = []
        for row in await self._offline_tokens({u for u, _ in conversations} & set(job.users)):
            shown_in = conversations.get((row.user_id, row.device_id))
            if shown_in is None:
                continue
            fields = {"conversationId": shown_in, "messageId": job.message_id}
            planned.append(
                Planned(
                    DeviceJob(row.user_id, row.device_id, "message_deleted", fields, job.at), row
                )
            )
        return planned


def _message_fields(item: MessageItem) -> dict[str, Any]:
    return {
        "conversationId": item.conversation_id,
        "messageId": item.message_id,
        "from": item.sender_id,
        "seq": item.seq,
    }
