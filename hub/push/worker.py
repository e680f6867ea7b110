"""The push worker every node runs: it takes jobs from the shared stream (and the ones a dead
node left unfinished), expands each into one push per device that is not connected, sends
them through the providers, and retries, forgets or drops by the providers' answers.

A job is acknowledged only after it was handled, so a node killed mid-way loses nothing: its
pending entries are claimed by another node after ``PUSH_CLAIM_IDLE_MS``. Handling is
at-least-once; a push sent twice is harmless where being lost is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from hub.clock import Clock
from hub.metrics import HubMetrics
from hub.push.expand import Planned, PushPlanner
from hub.push.jobs import DeviceJob, Job, MessageItem, MessagesStored, decode_job, encode_job
from hub.push.payloads import Push
from hub.push.providers import Provider, Target
from hub.push.rules import is_expired, retry_delay_ms
from hub.settings.push import PushSettings
from storage.redis.push_queue import QueuedJob, RedisPushQueue
from storage.sql.push import PushTokenStore

log = logging.getLogger(__name__)

READ_BATCH = 100
READ_BLOCK_MS = 500
DEPTH_EVERY_SECONDS = 2.0
# Delayed jobs (retries, bursts' last pushes) move to the stream this often, not every read:
# a busy worker reads many times a second, and a coalescing window is seconds long.
PROMOTE_EVERY_SECONDS = 0.1
PUSHED_MESSAGE_TTL_MS = 3 * 86_400_000  # a deletion this late no longer withdraws the alert
CALL_DEVICES_TTL_MS = 15 * 60_000


class PushWorker:
    def __init__(
        self,
        *,
        settings: PushSettings,
        queue: RedisPushQueue,
        planner: PushPlanner,
        tokens: PushTokenStore,
        providers: dict[str, Provider],
        metrics: HubMetrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._planner = planner
        self._tokens = tokens
        self._providers = providers
        self._metrics = metrics
        self._clock = clock
        self._in_flight = asyncio.Semaphore(settings.concurrency)

    async def run(self) -> None:
        """Until cancelled (the assembly owns this task), surviving Redis outages."""
        try:
            await self._rounds()
        finally:
            for provider in self._providers.values():
                await provider.close()

    async def _rounds(self) -> None:
        await self._queue.ensure_group()
        next_claim = 0.0
        next_depth = 0.0
        next_promote = 0.0
        while True:
            try:
                now = time.monotonic()
                if now >= next_promote:
                    await self._queue.promote_due(self._clock())
                    next_promote = now + PROMOTE_EVERY_SECONDS
                jobs: list[QueuedJob] = []
                if now >= next_claim:
                    jobs += await self._queue.claim_stale(self._settings.claim_idle_ms, READ_BATCH)
                    next_claim = now + max(0.2, self._settings.claim_idle_ms / 2000)
                if now >= next_depth:
                    self._metrics.push_queue_depth.set(await self._queue.depth())
                    next_depth = now + DEPTH_EVERY_SECONDS
                jobs += await self._queue.read(READ_BATCH, READ_BLOCK_MS)
                if jobs:
                    await self.handle(jobs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("push worker: a round failed; retrying in 1 s", exc_info=True)
                await asyncio.sleep(1)

    async def handle(self, jobs: Sequence[QueuedJob]) -> None:
        """Handle these stream entries; acknowledge the ones handled (a failure leaves its
        entry pending, for a later claim). The read's device jobs are planned together, and
        so are its stored-message batches (in stream order, so a conversation's newest copy
        is the one a coalesced push names): one token query, one presence round trip, one
        mute query and one window round trip for all of them."""
        devices: list[tuple[QueuedJob, DeviceJob]] = []
        stored: list[QueuedJob] = []
        items: list[MessageItem] = []
        fan_outs: list[tuple[list[str], Job]] = []
        for queued in jobs:
            job = decode_job(queued.job)
            if job is None:
                log.warning("push job %s of an unknown kind: dropped", queued.entry_id)
            elif isinstance(job, DeviceJob):
                devices.append((queued, job))
            elif isinstance(job, MessagesStored):
                stored.append(queued)
                items.extend(job.items)
            else:
                fan_outs.append(([queued.entry_id], job))
        if stored:
            fan_outs.append(([q.entry_id for q in stored], MessagesStored(tuple(items))))
        reports = await asyncio.gather(
            self._handle_devices(devices),
            *(self._handle_fan_out(entry_ids, job) for entry_ids, job in fan_outs),
        )
        failed = {entry_id: error for report in reports for entry_id, error in report.items()}
        for entry_id, error in failed.items():
            log.warning("push job %s failed; it will be retried", entry_id, exc_info=error)
        await self._queue.done([q.entry_id for q in jobs if q.entry_id not in failed])

    async def _handle_devices(
        self, entries: Sequence[tuple[QueuedJob, DeviceJob]]
    ) -> dict[str, BaseException]:
        """Plan and send the device jobs; the entries that failed, by entry id."""
        if not entries:
            return {}
        try:
            planned = await self._planner.devices([job for _, job in entries])
        except Exception as exc:
            return {queued.entry_id: exc for queued, _ in entries}
        entry_of = {id(job): queued.entry_id for queued, job in entries}
        results = await asyncio.gather(*(self._send(p) for p in planned), return_exceptions=True)
        return {
            entry_of[id(p.job)]: result
            for p, result in zip(planned, results, strict=True)
            if isinstance(result, BaseException)
        }

    async def _handle_fan_out(self, entry_ids: Sequence[str], job: Job) -> dict[str, BaseException]:
        """Plan and send one fan-out job made of these entries; all of them fail together."""
        try:
            planned = await self._planner.fan_out(job)
            await asyncio.gather(*(self._send(p) for p in planned))
        except Exception as exc:
            return dict.fromkeys(entry_ids, exc)
        return {}

    async def _send(self, planned: Planned) -> None:
        job, row = planned.job, planned.token
        provider = self._providers.get(row.provider)
        if provider is None:
            return  # registered while configured; this node has no credentials now
        kind_label = job.kind
        counter = self._metrics.pushes
        if is_expired(job.expires_at, self._clock()):
            counter.labels(row.provider, kind_label, "expired").inc()
            return
        token = row.voip_token if job.voip else row.token
        if token is None:
            return
        push = Push(job.kind, job.fields, planned.badge, job.expires_at)
        async with self._in_flight:
            started = time.perf_counter()
            answer = await provider.send(push, Target(token, row.environment))
            self._metrics.push_provider_seconds.labels(row.provider).observe(
                time.perf_counter() - started
            )
        if answer.outcome == "delivered":
            counter.labels(row.provider, kind_label, "delivered").inc()
            self._metrics.push_latency_seconds.labels(kind_label).observe(
                max(0, self._clock() - job.at) / 1000
            )
            await self._after_delivery(job)
        elif answer.outcome == "token_gone":
            counter.labels(row.provider, kind_label, "token_gone").inc()
            log.info(
                "push: %s says a %s token is gone (%s): forgotten",
                row.provider,
                job.kind,
                answer.reason,
            )
            if job.voip:
                await self._tokens.forget_voip(token)
            else:
                await self._tokens.forget(row.provider, token)
        elif answer.outcome == "rejected":
            counter.labels(row.provider, kind_label, "rejected").inc()
            log.warning(
                "push: %s refused a %s push: %s %s",
                row.provider,
                job.kind,
                answer.status,
                answer.reason,
            )
        else:
            await self._retry_later(
                job, row.provider, answer.status, answer.reason, answer.retry_after_seconds
            )

    async def _retry_later(
        self, job: DeviceJob, provider: str, status: int | None, reason: str, after: float | None
    ) -> None:
        counter = self._metrics.pushes
        if job.attempt >= self._settings.max_attempts:
            counter.labels(provider, job.kind, "dropped").inc()
            log.warning(
                "push: a %s push to %s dropped after %d attempts (last: %s %s)",
                job.kind,
                provider,
                job.attempt,
                status,
                reason,
            )
            return
        counter.labels(provider, job.kind, "retried").inc()
        delay = retry_delay_ms(job.attempt, self._settings.retry_base_ms, after)
        again = replace(job, attempt=job.attempt + 1)
        await self._queue.schedule(
            f"retry:{job.user_id}:{job.device_id}:{job.kind}:{job.at}:{job.attempt}",
            encode_job(again),
            self._clock() + delay,
        )

    async def _after_delivery(self, job: DeviceJob) -> None:
        """What later pushes need to know: which devices a message or a call reached, and
        that a burst's last push opened a new coalescing window."""
        member = f"{job.user_id}|{job.device_id}"
        if job.kind == "message":
            key = self._planner.keys.push_message_devices(str(job.fields["messageId"]))
            conversation = str(job.fields["conversationId"])
            await self._queue.remember_message_push(
                key,
                f"{member}|{conversation}",
                PUSHED_MESSAGE_TTL_MS,
                job.window,
                self._settings.coalesce_ms,
            )
        elif job.kind == "call":
            key = self._planner.keys.push_call_devices(str(job.fields["callId"]))
            await self._queue.remember(key, [member], CALL_DEVICES_TTL_MS)
