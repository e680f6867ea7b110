"""The soak's sender side: every phone's outbox, as the app keeps it.

A message is created when the open-loop schedule says so and written at once if the socket is
up, else queued. It leaves the outbox with an ``ok`` ack. A write whose socket dropped, or that
had no ack within the ack timeout, is written again *with the same id* (the hub answers a
resend with the original ``{id, ts}``); a retryable refusal (``unavailable``,
``rate_limited``) is retried after ``retry_after_s``. At most ``1 + resend_attempts`` writes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from loadtest.crypto import plaintext_size
from loadtest.phones.inflight import RETRYABLE, Phone, Record, error_code
from loadtest.phones.world import NS, Pair, User, World
from loadtest.plan import SoakPlan


class Outboxes:
    """Every sender's outbox, and the first ack of every id (a resend must get the same)."""

    def __init__(
        self,
        world: World,
        plan: SoakPlan,
        records: dict[str, Record],
        phones: dict[User, Phone],
    ) -> None:
        self.world = world
        self.plan = plan
        self.records = records  # shared with the recipients' side: not yet acked and seen
        self.phones = phones
        self.ack_ts: dict[str, int] = {}  # every acked id -> the ts of its first ack
        self.ack_timeout_ns = 10 * NS

    def create(self, pair: Pair, intended_ns: int) -> None:
        """A message the schedule made due: into the outbox, and out now if the socket is up."""
        world = self.world
        message_id = str(uuid.uuid4())
        assert pair.seal_channel is not None
        ciphertext, nonce = pair.seal_channel.seal(
            message_id, intended_ns, plaintext_size(world.rng)
        )
        body = {
            "id": message_id,
            "to": pair.recipient.user_id,
            "ciphertext": ciphertext,
            "nonce": nonce,
        }
        record = Record(intended_ns, pair, body)
        self.records[message_id] = record
        phone = self.phones[pair.sender]
        phone.outbox[message_id] = record
        stats = world.stats
        stats.count("sent")
        stats.sent_by_second[int(world.rel_s(intended_ns))] += 1
        if pair.sender.connected and not phone.recovering:
            self.write(phone, message_id, record)
        else:
            stats.count("queued_offline")

    def write(self, phone: Phone, message_id: str, record: Record) -> None:
        stats = self.world.stats
        if record.writes > self.plan.resend_attempts:
            del phone.outbox[message_id]
            stats.error("message:send:gave_up")
            return
        sock = phone.user.sock
        gen = phone.gen
        if sock is None or not sock.emit(
            "message:send", record.body, lambda ack: self.on_ack(message_id, ack)
        ):
            return  # the socket is gone: the recovery writes it again
        record.writes += 1
        record.gen = gen
        record.sent_ns = time.monotonic_ns()
        stats.count("writes")
        if record.writes > 1:
            stats.count("resent")

    def flush(self, phone: Phone) -> None:
        """Write what this connection has not carried yet (queued, or sent on a dead socket)."""
        if not phone.user.connected:
            return
        now = time.monotonic_ns()
        for message_id, record in list(phone.outbox.items()):
            if record.gen != phone.gen and record.retry_at_ns <= now:
                self.write(phone, message_id, record)

    async def check_forever(self) -> None:
        """Twice a second: resend what waited longer than the ack timeout on a live socket,
        and retries that are due. Cancelled by the activity's ``settle``."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic_ns()
            for phone in self.phones.values():
                if not phone.outbox or phone.recovering or not phone.user.connected:
                    continue
                for message_id, record in list(phone.outbox.items()):
                    if record.gen != phone.gen:
                        if record.retry_at_ns <= now:
                            self.write(phone, message_id, record)
                    elif now - record.sent_ns > self.ack_timeout_ns:
                        self.world.stats.count("ack_timeouts")
                        self.write(phone, message_id, record)

    def on_ack(self, message_id: str, ack: Any) -> None:
        world = self.world
        now = time.monotonic_ns()
        record = self.records.get(message_id)
        if isinstance(ack, dict) and ack.get("ok") is True:
            self.acked(message_id, ack, record, now)
            return
        world.ack_error("message:send", ack)
        if record is None or record.acked_ns or message_id in self.ack_ts:
            return
        code = error_code(ack)
        phone = self.phones[record.pair.sender]
        if code in RETRYABLE:
            record.gen = -1
            record.retry_at_ns = now + int(self.plan.retry_after_s * NS)
            return
        record.failed = code
        phone.outbox.pop(message_id, None)

    def acked(self, message_id: str, ack: dict[str, Any], record: Record | None, now: int) -> None:
        """An ``ok`` ack: the first one settles the message, a later one must repeat its ts."""
        world = self.world
        ts = ack.get("ts")
        first = self.ack_ts.get(message_id)
        if first is not None:  # a resend's ack, or a late one: must be the same answer
            world.stats.count("ack_repeats")
            if ts != first:
                world.stats.error("message:send:ack_ts_changed")
            return
        self.ack_ts[message_id] = ts if isinstance(ts, int) else -1
        if ack.get("id") != message_id:
            world.stats.error("message:send:ack_wrong_id")
        if record is None:
            return
        record.acked_ns = now
        record.body = None
        self.phones[record.pair.sender].outbox.pop(message_id, None)
        world.stats.count("acked")
        world.stats.ack.append(world.rel_s(record.intended_ns))
        world.stats.ack.append((now - record.intended_ns) / 1e6)
        if record.seen:
            del self.records[message_id]
