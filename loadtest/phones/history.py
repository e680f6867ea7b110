"""The soak's recipient side: what each phone holds, and how it catches up.

A recipient de-duplicates by message id and keeps the highest ``seq`` below which it holds
everything. After a reconnect it calls ``message:sync {after: that seq}`` page by page until
``more`` is false; a ``message:new`` that skips a ``seq`` starts the same sync if the gap is
still open ``gap_sync_delay_s`` later. The final listing (``message:sync`` from 0) is where
duplicates in storage, seq gaps and never-stored arrivals show.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from loadtest.phones.inflight import (
    FINAL,
    LIVE,
    SAMPLES,
    SYNC,
    Phone,
    Record,
    SocketLost,
    call,
    error_code,
)
from loadtest.phones.world import User, World
from loadtest.pipe import Sample
from loadtest.plan import SoakPlan

Spawn = Callable[[Coroutine[Any, Any, Any]], None]


class Histories:
    """What every recipient holds, and the counts of what arrived wrong (twice, unknown)."""

    def __init__(
        self,
        world: World,
        plan: SoakPlan,
        records: dict[str, Record],
        phones: dict[User, Phone],
        spawn: Spawn,
    ) -> None:
        self.world = world
        self.plan = plan
        self.records = records  # shared with the senders' side: not yet acked and seen
        self.phones = phones
        self.spawn = spawn
        self.redelivered: Counter[str] = Counter()
        self.n: Counter[str] = Counter()  # outcome counters for the final numbers
        self.duplicate_samples: list[Sample] = []

    def on_message(self, user: User, data: Any) -> None:
        phone = self.phones.get(user)
        if phone is None or user.role != "recipient":
            self.world.stats.count("message:new:other")
            return
        if isinstance(data, dict):
            self.receive(phone, data, LIVE)
        else:
            self.n["unexpected"] += 1

    def receive(self, phone: Phone, data: dict[str, Any], source: str) -> None:
        world = self.world
        now = time.monotonic_ns()
        message_id, seq = data.get("id"), data.get("seq")
        if not isinstance(message_id, str) or not isinstance(seq, int):
            self.n["unexpected"] += 1
            world.stats.error("message:new:malformed")
            return
        held = phone.seen.get(message_id)
        if held is not None:
            if held != seq:
                self.duplicate(phone, message_id, held, seq, source)
            else:
                self.redelivered[source] += 1  # the de-duplication drops it: fine
            return
        phone.seen[message_id] = seq
        self.hold_seq(phone, seq)
        record = self.records.get(message_id)
        if record is None or record.pair.recipient is not phone.user:
            self.n["unexpected"] += 1
            world.stats.count("unexpected")
            return
        self.check_sealed(record, data)
        self.count_arrival(phone, record, source, now)
        record.seen = True
        if record.acked_ns:
            del self.records[message_id]

    def check_sealed(self, record: Record, data: dict[str, Any]) -> None:
        """The box must open with the recipient's key and name its id and sender."""
        pair = record.pair
        try:
            assert pair.open_channel is not None
            sealed_id, _ = pair.open_channel.open(data["ciphertext"], data["nonce"])
        except Exception:
            sealed_id = ""
        if sealed_id != data.get("id") or data.get("from") != pair.sender.user_id:
            self.n["corrupted"] += 1
            self.world.stats.count("corrupted")

    def count_arrival(self, phone: Phone, record: Record, source: str, now: int) -> None:
        world = self.world
        stats = world.stats
        if source == LIVE:
            stats.count("delivered")
            stats.e2e.append(world.rel_s(record.intended_ns))
            stats.e2e.append((now - record.intended_ns) / 1e6)
            if phone.above and not phone.gap_armed:
                phone.gap_armed = True
                asyncio.get_running_loop().call_later(
                    self.plan.gap_sync_delay_s, self.gap_check, phone
                )
        elif source == SYNC:
            stats.count("recovered")
        else:
            stats.count("recovered_final")

    def hold_seq(self, phone: Phone, seq: int) -> None:
        if seq <= phone.top or seq in phone.above:
            self.world.stats.error("message:new:seq_reused")
            return
        if seq != phone.top + 1:
            phone.above.add(seq)
            return
        phone.top = seq
        while phone.top + 1 in phone.above:
            phone.above.remove(phone.top + 1)
            phone.top += 1

    def duplicate(self, phone: Phone, message_id: str, seq1: int, seq2: int, source: str) -> None:
        self.n["duplicates"] += 1
        self.world.stats.count("duplicates")
        if len(self.duplicate_samples) < SAMPLES:
            self.duplicate_samples.append(
                {"id": message_id, "to": phone.user.user_id, "seqs": [seq1, seq2], "via": source}
            )

    def gap_check(self, phone: Phone) -> None:
        phone.gap_armed = False
        if self.world.closing or not phone.above:
            return
        if phone.user.connected and not phone.syncing and not phone.recovering:
            self.world.stats.count("gap_syncs")
            self.spawn(self.sync(phone, phone.top, SYNC))

    async def sync(self, phone: Phone, after: int, source: str) -> bool:
        """``message:sync`` page by page until ``more`` is false (bounded)."""
        if phone.syncing:
            return True
        phone.syncing = True
        try:
            for _ in range(10_000):
                if not phone.user.connected:
                    return False
                try:
                    ack = await call(
                        phone,
                        "message:sync",
                        {"after": after, "limit": self.plan.sync_page},
                        self.plan.sync_timeout_s,
                    )
                except (SocketLost, TimeoutError) as exc:
                    self.world.stats.error(f"message:sync:{type(exc).__name__}")
                    return False
                if not (isinstance(ack, dict) and ack.get("ok") is True):
                    self.world.ack_error("message:sync", ack)
                    return False
                messages = ack.get("messages") or []
                for message in messages:
                    self.receive(phone, message, source)
                self.world.stats.count("sync_pages")
                if messages:
                    after = max(after, int(messages[-1]["seq"]))
                if not ack.get("more") or not messages:
                    return True
            self.world.stats.error("message:sync:too_many_pages")
            return False
        finally:
            phone.syncing = False

    async def final_listing(self, phone: Phone) -> str:
        """The whole history from 0: "ok", or why it could not be listed."""
        listed: dict[str, int] = {}
        after = 0
        for _ in range(10_000):
            try:
                ack = await call(
                    phone,
                    "message:sync",
                    {"after": after, "limit": self.plan.sync_page},
                    self.plan.sync_timeout_s,
                )
            except (SocketLost, TimeoutError) as exc:
                return f"sync {type(exc).__name__}"
            if not (isinstance(ack, dict) and ack.get("ok") is True):
                self.world.ack_error("message:sync", ack)
                return f"sync refused {error_code(ack)}"
            messages = ack.get("messages") or []
            for message in messages:
                self.list_one(phone, message, listed)
            if messages:
                after = max(after, int(messages[-1]["seq"]))
            if not ack.get("more") or not messages:
                break
        seqs = sorted(listed.values())
        if seqs and seqs[-1] != len(seqs):
            self.n["seq_gaps"] += seqs[-1] - len(seqs)
        self.n["not_stored"] += sum(1 for m in phone.seen if m not in listed)
        return "ok"

    def list_one(self, phone: Phone, message: dict[str, Any], listed: dict[str, int]) -> None:
        """One entry of the final listing: twice in it, or under another seq, is a duplicate."""
        message_id, seq = message.get("id"), message.get("seq")
        if not isinstance(message_id, str) or not isinstance(seq, int):
            self.n["unexpected"] += 1
            return
        if message_id in listed:
            self.duplicate(phone, message_id, listed[message_id], seq, "final listing")
            return
        listed[message_id] = seq
        if message_id in phone.seen:
            if phone.seen[message_id] != seq:
                self.duplicate(phone, message_id, phone.seen[message_id], seq, FINAL)
        else:
            self.receive(phone, message, FINAL)
