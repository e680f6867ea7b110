"""At most once per Idempotency-Key: a payment POST runs once per (user, key), across nodes,
and every other request with the key gets the first answer, status code included.

Claim the record → run the attempt → store its answer. A retry replays the stored answer; a
concurrent retry waits for it (polling the record, bounded by the wait setting); a record
whose owner died mid-request (older than the stale setting) is retaken, and the attempt is
told so through the record (``payment_id`` set: the dead owner had written its ledger row).
A request refused before any payment was made (a ``HubError`` from the attempt) keeps
nothing: the key stays free, as for a request that failed validation.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hub.clock import Clock
from hub.errors import HubError, IdempotencyInProgress, IdempotencyMismatch
from hub.payments.ports import IdempotencyRecords
from hub.payments.rules import idempotency_verdict
from storage.sql.payments_idempotency import IdempotencyRow, LostClaim

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.05
LONGEST_PAUSE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """What a payment POST answers, and what its key replays: ``status`` is the HTTP status
    (201, or the error's), ``body`` the JSON object, stored byte for byte."""

    status: int
    body: dict[str, Any]


# The work done once per key: given the claimed record and the owner token holding it.
Attempt = Callable[[IdempotencyRow, str], Awaitable[PaymentAnswer]]


def replay(record: IdempotencyRow) -> PaymentAnswer:
    """The answer a ``done`` record keeps."""
    if record.response_status is None or record.response_body is None:
        raise ValueError(f"the idempotency record of {record.key!r} holds no answer")
    return PaymentAnswer(record.response_status, orjson.loads(record.response_body))


def still_running() -> IdempotencyInProgress:
    return IdempotencyInProgress(
        "a request with this Idempotency-Key is still being processed; retry shortly"
    )


class IdempotentRequests:
    def __init__(
        self,
        *,
        records: IdempotencyRecords,
        clock: Clock,
        stale_seconds: int,
        wait_seconds: int,
        retention_seconds: int = 86_400,
    ) -> None:
        self._records = records
        self._clock = clock
        self._stale_ms = stale_seconds * 1000
        self._wait_ms = wait_seconds * 1000
        self._retention_ms = retention_seconds * 1000

    async def run_once(
        self, user_id: str, key: str, fingerprint: str, attempt: Attempt
    ) -> PaymentAnswer:
        """Run ``attempt`` at most once per (user, key); every other request with the key
        gets the stored answer, waiting for it while it is being made."""
        owner = uuid.uuid4().hex
        deadline = self._clock() + self._wait_ms
        pause = FIRST_PAUSE_SECONDS
        while True:
            now = self._clock()
            record = await self._records.claim(
                user_id, key, fingerprint, owner, now, expired_before=now - self._retention_ms
            )
            if record is None:
                continue  # released between insert and select: claim again
            verdict = idempotency_verdict(record, fingerprint, owner, now, self._stale_ms)
            if verdict == "mismatch":
                raise IdempotencyMismatch(
                    "this Idempotency-Key was used for a different request; use a new key"
                )
            if verdict == "replay":
                return replay(record)
            if verdict == "retake":
                taken = await self._records.retake(user_id, key, record.owner_token, owner, now)
                if taken is None:
                    continue
                log.warning("payment request of user %s retaken from a stale owner", user_id)
                return await self._run(taken, owner, attempt)
            if verdict == "run":
                return await self._run(record, owner, attempt)
            if now >= deadline:
                raise still_running()
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)

    async def sweep(self) -> int:
        """Remove the finished records older than the retention; how many went."""
        return await self._records.sweep(self._clock() - self._retention_ms)

    async def _run(self, record: IdempotencyRow, owner: str, attempt: Attempt) -> PaymentAnswer:
        try:
            answer = await attempt(record, owner)
        except LostClaim:
            raise still_running() from None
        except HubError:
            await self._records.release(record.user_id, record.key, owner)
            raise
        body = orjson.dumps(answer.body).decode()
        stored = await self._records.finish(record.user_id, record.key, answer.status, body)
        return answer if stored is None else replay(stored)
