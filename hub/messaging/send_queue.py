"""Group commit for sends: messages that arrive while a transaction is in flight are stored
together in the next one, then delivered with one device-directory lookup.

One transaction per message spends most of its time on round trips and WAL flushes; a batch
pays them once. Every sender still gets its ack only after its own message is committed.
Fan-out runs beside the commits, not between them: while one batch is being delivered the
next one is already being written, and deliveries still leave in commit order (so each
user's ``seq`` arrives in order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from hub.fanout import Delivery, Fanout
from hub.messaging.views import message_new
from hub.push.jobs import MessageItem
from storage.sql.message_rows import MissingUser, NewMessage, SendOutcome
from storage.sql.messages import MessageStore

log = logging.getLogger(__name__)

MAX_BATCH = 1024
MAX_UNDELIVERED_BATCHES = 64  # past this, commits wait for fan-out to catch up


class MessagePushes(Protocol):
    """Push, handed every stored copy after its batch's fan-out (``enabled`` false: skip)."""

    enabled: bool

    async def messages_stored(self, items: Sequence[MessageItem]) -> None: ...


@dataclass(slots=True)
class _Committed:
    """A committed batch: its socket deliveries, and the copies push decides about."""

    deliveries: list[Delivery]
    pushes: list[MessageItem]


@dataclass(slots=True)
class _Pending:
    message: NewMessage
    except_conn: str | None
    done: asyncio.Future[SendOutcome]


class SendQueue:
    def __init__(
        self,
        store: MessageStore,
        fanout: Fanout,
        pushes: MessagePushes,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._store = store
        self._fanout = fanout
        self._pushes = pushes
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: asyncio.Queue[_Committed] = asyncio.Queue(MAX_UNDELIVERED_BATCHES)

    async def submit(self, message: NewMessage, except_conn: str | None) -> SendOutcome:
        """Resolves once the message is committed (or found to be a resend)."""
        loop = asyncio.get_running_loop()
        pending = _Pending(message, except_conn, loop.create_future())
        self._queue.append(pending)
        if not self._draining:
            self._draining = True
            self._spawn(self._drain())
        return await pending.done

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the sends of this loop turn join the first batch
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                committed = await self._commit(batch)
                if committed.deliveries:
                    await self._outbox.put(committed)
        finally:
            self._draining = False

    async def _commit(self, batch: list[_Pending]) -> _Committed:
        """Store the batch, answer every sender, and return what is to be delivered."""
        outcomes: list[SendOutcome | BaseException]
        try:
            outcomes = list(await self._store.insert_batch([p.message for p in batch]))
        except MissingUser:
            outcomes = [await self._commit_alone(p.message) for p in batch]
        except Exception as exc:
            outcomes = [exc] * len(batch)
        deliveries: list[Delivery] = []
        pushes: list[MessageItem] = []
        wants_pushes = self._pushes.enabled
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.done.done():
                pass  # the sender went away; the message is stored all the same
            elif isinstance(outcome, BaseException):
                pending.done.set_exception(outcome)
            else:
                pending.done.set_result(outcome)
            if isinstance(outcome, SendOutcome):
                sender = pending.message.sender_id
                deliveries.extend(
                    Delivery(
                        copy.user_id,
                        "message:new",
                        cast("dict[str, Any]", message_new(copy)),
                        pending.except_conn if copy.user_id == sender else None,
                    )
                    for copy in outcome.copies
                )
                if wants_pushes:
                    pushes.extend(
                        MessageItem(
                            copy.user_id,
                            copy.conversation_id,
                            copy.message_id,
                            sender,
                            copy.seq,
                            copy.band_id,
                            copy.relates_type,
                            copy.ts,
                            copy.request,
                        )
                        for copy in outcome.copies  # the sender's own too: push decides
                    )
        return _Committed(deliveries, pushes)

    async def run_deliveries(self) -> None:
        """Until cancelled (the assembly owns this task): the one deliverer, so batches
        leave in commit order; batches that queued up while it was busy go out together,
        with one directory lookup. Commits wait once ``MAX_UNDELIVERED_BATCHES`` are queued."""
        outbox = self._outbox
        while True:
            committed = await outbox.get()
            deliveries, pushes = committed.deliveries, committed.pushes
            while not outbox.empty():
                more = outbox.get_nowait()
                deliveries += more.deliveries
                pushes += more.pushes
            try:
                await self._fanout.deliver(deliveries)
            except Exception:
                log.exception("delivery of a committed batch failed; devices will sync")
            if pushes:
                try:
                    await self._pushes.messages_stored(pushes)
                except Exception:
                    log.exception("%d stored messages not queued for push", len(pushes))

    async def _commit_alone(self, message: NewMessage) -> SendOutcome | BaseException:
        try:
            return (await self._store.insert_batch([message]))[0]
        except Exception as exc:
            return exc
