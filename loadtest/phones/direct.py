"""The paced direct messages of ``run``, ``step`` and ``compare``: each id followed from send to
ack to delivery, which is where ack latency, end-to-end latency (from the send time sealed
inside the NaCl box), loss and duplicates come from.

Paced means open loop: the scheduler calls ``fire(intended_ns)`` at the target rate whether or
not earlier sends were acked, so a slow hub shows as latency and loss, never as a lower rate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from loadtest.crypto import plaintext_size
from loadtest.phones.world import NS, Activity, Pair, User, World
from loadtest.pipe import DirectTally, Sample


class DirectMessages(Activity):
    """``message:send`` to the pair's other side; tracks each id to its ack and delivery."""

    paced = True

    def __init__(self, world: World) -> None:
        self.world = world
        # id -> [intended_ns, pair, acked_ns, deliveries]
        self.records: dict[str, list[Any]] = {}
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.delivered_unique = 0
        self.duplicated = 0
        self.corrupted = 0
        self.unexpected = 0
        # the push mix: (id, sender id, the hub's commit ms) of each message acked to an
        # offline recipient; the parent matches them with what the fake provider received
        self.offline_commits: list[tuple[str, str, int]] = []
        self.hooks_before_send: list[Callable[[Pair, int], None]] = []
        self.hooks_delivered: list[Callable[[User, str], None]] = []
        self.ack_timeout_ns = 30 * NS

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"message:new": self.on_message}

    def send(self, pair: Pair, intended_ns: int) -> None:
        world = self.world
        sock = pair.sender.sock
        if sock is None or not sock.connected:
            world.stats.error("message:send:not_connected")
            return
        for hook in self.hooks_before_send:
            hook(pair, intended_ns)
        message_id = str(uuid.uuid4())
        assert pair.seal_channel is not None
        ciphertext, nonce = pair.seal_channel.seal(
            message_id, intended_ns, plaintext_size(world.rng)
        )
        record = [intended_ns, pair, 0, 0]
        self.records[message_id] = record
        body = {
            "id": message_id,
            "to": pair.recipient.user_id,
            "ciphertext": ciphertext,
            "nonce": nonce,
        }
        if not sock.emit("message:send", body, lambda ack: self.on_ack(message_id, ack)):
            del self.records[message_id]
            world.stats.error("message:send:write_failed")
            return
        stats = world.stats
        stats.count("sent")
        stats.sent_by_second[int(world.rel_s(intended_ns))] += 1

    def fire(self, world: World, intended_ns: int) -> None:
        self.send(world.pairs[world.rng.randrange(len(world.pairs))], intended_ns)

    def on_ack(self, message_id: str, ack: Any) -> None:
        world = self.world
        now = time.monotonic_ns()
        record = self.records.get(message_id)
        if record is None:
            return
        if not (isinstance(ack, dict) and ack.get("ok") is True):
            world.ack_error("message:send", ack)
            self.failed.add(message_id)
            del self.records[message_id]
            return
        if ack.get("id") != message_id:
            world.stats.error("message:send:ack_wrong_id")
        record[2] = now
        pair: Pair = record[1]
        pair.started = True
        stats = world.stats
        stats.count("acked")
        stats.ack.append(world.rel_s(record[0]))
        stats.ack.append((now - record[0]) / 1e6)
        if pair.recipient.offline:  # nothing to deliver: the hub owes it a push instead
            stats.count("acked_offline")
            self.offline_commits.append((message_id, pair.sender.user_id, int(ack.get("ts", 0))))
            del self.records[message_id]
            return
        if record[3]:
            del self.records[message_id]
            self.done.add(message_id)

    def on_message(self, user: User, data: Any) -> None:
        world = self.world
        now = time.monotonic_ns()
        if user.role != "recipient":
            world.stats.count("message:new:other")
            return
        message_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(message_id, str):
            self.unexpected += 1
            world.stats.count("unexpected")
            return
        record = self.records.get(message_id)
        if record is None:
            if message_id in self.done:
                self.duplicated += 1
                world.stats.count("duplicated")
            else:
                self.unexpected += 1
                world.stats.count("unexpected")
            return
        pair: Pair = record[1]
        record[3] += 1
        if record[3] > 1:
            self.duplicated += 1
            world.stats.count("duplicated")
            return
        try:
            assert pair.open_channel is not None
            sealed_id, sent_ns = pair.open_channel.open(data["ciphertext"], data["nonce"])
        except Exception:
            sealed_id, sent_ns = "", record[0]
        if sealed_id != message_id or data.get("from") != pair.sender.user_id:
            self.corrupted += 1
            world.stats.count("corrupted")
        self.delivered_unique += 1
        stats = world.stats
        stats.count("delivered")
        stats.e2e.append(world.rel_s(record[0]))
        stats.e2e.append((now - sent_ns) / 1e6)
        if record[2]:
            del self.records[message_id]
            self.done.add(message_id)
        for hook in self.hooks_delivered:
            hook(user, message_id)

    def outstanding(self) -> tuple[int, int]:
        """(sent and not acked, acked and not yet delivered to a connected recipient)."""
        unacked = undelivered = 0
        for _, pair, acked, deliveries in self.records.values():
            if not acked:
                if pair.sender.connected:
                    unacked += 1
            elif not deliveries and pair.recipient.connected:
                undelivered += 1
        return unacked, undelivered

    def overdue(self, now_ns: int, after_s: float = 5.0) -> int:
        """Messages older than ``after_s`` still not acked or not delivered."""
        limit = now_ns - int(after_s * NS)
        return sum(1 for r in self.records.values() if r[0] < limit)

    def busy(self) -> bool:
        unacked, undelivered = self.outstanding()
        return bool(unacked or undelivered)

    def tally(self, world: World) -> DirectTally:
        """How the messages ended, after the drain: what the parent adds up over workers."""
        unacked = unacked_disconnected = lost = undeliverable = 0
        lost_samples: list[Sample] = []
        lost_seconds: list[float] = []
        for message_id, (intended, pair, acked, deliveries) in self.records.items():
            if not acked:
                if (
                    pair.sender.first_loss_ns
                    and pair.sender.first_loss_ns <= intended + self.ack_timeout_ns
                ):
                    unacked_disconnected += 1
                else:
                    unacked += 1
                continue
            if deliveries:
                continue
            loss_at = pair.recipient.first_loss_ns
            if loss_at and loss_at <= acked + 10 * NS:
                undeliverable += 1
                continue
            lost += 1
            lost_seconds.append(world.rel_s(intended))
            if len(lost_samples) < 20:
                lost_samples.append(
                    {
                        "id": message_id,
                        "sentAtS": round(world.rel_s(intended), 3),
                        "ackedAfterMs": round((acked - intended) / 1e6, 1),
                        "from": pair.sender.user_id,
                        "to": pair.recipient.user_id,
                        "senderUrl": pair.sender.url,
                        "recipientUrl": pair.recipient.url,
                    }
                )
        return DirectTally(
            delivered=self.delivered_unique,
            duplicated=self.duplicated,
            corrupted=self.corrupted,
            unexpected=self.unexpected,
            ack_failed=len(self.failed),
            unacked=unacked,
            unacked_sender_disconnected=unacked_disconnected,
            lost=lost,
            undeliverable=undeliverable,
            lost_samples=lost_samples,
            lost_seconds=lost_seconds,
            offline_acked=len(self.offline_commits),
            offline_commits=self.offline_commits,
        )
