"""The soak's phones: direct messages that survive hub nodes being killed, as the app does it.

``SoakMessages`` replaces ``DirectMessages`` in ``python -m loadtest soak``. It ties together
what every phone keeps: the senders' outboxes (``outbox.py``), the recipients' histories and
syncs (``history.py``) and the redial after a drop (``redial.py``). A phone whose socket drops
reconnects, then catches up: a recipient syncs from the highest ``seq`` it holds everything
below, a sender writes what its outbox has not carried on the new connection.

After the drain every recipient lists its whole history (``message:sync`` from 0): what it had
not seen yet is *recovered by the final sync*; an id listed twice, or under a ``seq`` other than
the one it arrived with, is a *duplicate* (the hub stored or numbered it twice); a message whose
sender got an ``ok`` ack and that the recipient never saw, live or by any sync, is *lost*.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from loadtest.phones.history import Histories
from loadtest.phones.inflight import SAMPLES, SYNC, Phone, Record, SocketLost
from loadtest.phones.outbox import Outboxes
from loadtest.phones.redial import Dial, Redialer
from loadtest.phones.world import NS, Activity, User, World
from loadtest.pipe import Sample, SoakTally
from loadtest.plan import SoakPlan


class SoakMessages(Activity):
    """The soak's paced activity: creates messages on schedule and recovers every drop."""

    paced = True

    def __init__(self, world: World, plan: SoakPlan, urls: list[str], dial: Dial) -> None:
        self.world = world
        self.plan = plan
        self.records: dict[str, Record] = {}  # not yet both acked and seen
        self.phones: dict[User, Phone] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.checker: asyncio.Task[None] | None = None
        self.outboxes = Outboxes(world, plan, self.records, self.phones)
        self.histories = Histories(world, plan, self.records, self.phones, self.spawn)
        self.redialer = Redialer(world, plan, urls, dial)
        world.disconnect_hooks.append(self.on_drop)

    @property
    def ack_timeout_ns(self) -> int:
        return self.outboxes.ack_timeout_ns

    @ack_timeout_ns.setter
    def ack_timeout_ns(self, value: int) -> None:
        self.outboxes.ack_timeout_ns = value

    # -- plumbing -----------------------------------------------------------------------

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"message:new": self.histories.on_message}

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def setup(self, world: World) -> None:
        for user in world.users:
            phone = Phone(user, gen=1 if user.connected else 0)
            self.phones[user] = phone
        for phone in self.phones.values():
            if not phone.user.connected:  # the first connect failed: keep trying like a phone
                phone.dropped_ns = time.monotonic_ns()
                self.spawn(self.recover(phone))

    def start(self, world: World) -> None:
        self.checker = asyncio.get_running_loop().create_task(self.outboxes.check_forever())

    def fire(self, world: World, intended_ns: int) -> None:
        pair = world.pairs[world.rng.randrange(len(world.pairs))]
        self.outboxes.create(pair, intended_ns)

    # -- dropping and coming back -------------------------------------------------------

    def on_drop(self, user: User) -> None:
        phone = self.phones.get(user)
        if phone is None or self.world.closing:
            return
        phone.dropped_ns = time.monotonic_ns()
        for future in phone.calls:
            if not future.done():
                future.set_exception(SocketLost("socket lost"))
        self.world.stats.count("drops")
        if not phone.recovering:
            self.spawn(self.recover(phone))

    async def recover(self, phone: Phone) -> None:
        phone.recovering = True
        try:
            for _ in range(5):  # a socket that drops again while catching up: start over
                if self.world.closing:
                    return
                if not phone.user.connected and not await self.redialer.reconnect(phone):
                    return
                await self.catch_up(phone)
                if phone.user.connected:
                    return
        finally:
            phone.recovering = False

    async def catch_up(self, phone: Phone) -> None:
        if phone.user.role == "recipient":
            if await self.histories.sync(phone, phone.top, SYNC):
                self.world.stats.count("reconnect_syncs")
        else:
            self.outboxes.flush(phone)

    # -- the end ------------------------------------------------------------------------

    def busy(self) -> bool:
        """Phones still reconnecting or syncing, outboxes with something to send, or acks
        younger than 3 s whose message has not arrived yet."""
        recent = time.monotonic_ns() - 3 * NS
        for phone in self.phones.values():
            if phone.recovering or phone.syncing:
                return True
            if phone.outbox and phone.user.connected:
                return True
        return any(r.acked_ns > recent and not r.seen for r in self.records.values())

    async def settle(self, world: World) -> None:
        """Every recipient lists its whole history once, after the drain."""
        deadline = time.monotonic() + self.plan.final_sync_timeout_s
        recipients = [p for p in self.phones.values() if p.user.role == "recipient"]
        limit = asyncio.Semaphore(self.plan.final_sync_concurrency)

        async def one(phone: Phone) -> None:
            async with limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    phone.final = "no time left"
                    return
                try:
                    phone.final = await asyncio.wait_for(self.final_sync(phone), remaining)
                except TimeoutError:
                    phone.final = "timed out"

        await asyncio.gather(*(one(p) for p in recipients))
        if self.checker is not None:
            self.checker.cancel()
        for task in list(self.tasks):
            task.cancel()
        for phone in recipients:
            if phone.final != "ok":
                world.stats.error(f"final_sync:{phone.final}")

    async def final_sync(self, phone: Phone) -> str:
        """Reconnect if needed (through ``recover``, never beside it), then list everything.
        The caller bounds the time."""
        waits = int(self.plan.final_sync_timeout_s * 10) + 1
        for _ in range(3):
            for _ in range(waits):  # a recovery in progress finishes first
                if not phone.recovering:
                    break
                await asyncio.sleep(0.1)
            if not phone.user.connected:
                phone.dropped_ns = time.monotonic_ns()
                await self.recover(phone)
                if not phone.user.connected:
                    return "could not connect"
            result = await self.histories.final_listing(phone)
            if result == "ok" or phone.user.connected:
                return result
        return "socket kept dropping"

    def gauges(self, world: World) -> dict[str, int]:
        out: Counter[str] = Counter()
        for phone in self.phones.values():
            if phone.user.connected:
                out[f"conn:{phone.user.url}"] += 1
            if phone.recovering:
                out["recovering"] += 1
            out["outbox"] += len(phone.outbox)
        return dict(out)

    def overdue(self, now_ns: int, after_s: float = 5.0) -> int:
        limit = now_ns - int(after_s * NS)
        return sum(1 for r in self.records.values() if r.intended_ns < limit)

    def lost_sample(self, message_id: str, record: Record) -> Sample:
        """A lost message as the report shows it: when, how often written, between whom."""
        world, pair = self.world, record.pair
        return {
            "id": message_id,
            "sentAtS": round(world.rel_s(record.intended_ns), 3),
            "ackedAtS": round(world.rel_s(record.acked_ns), 3),
            "writes": record.writes,
            "from": pair.sender.user_id,
            "to": pair.recipient.user_id,
            "senderUrl": pair.sender.url,
            "recipientUrl": pair.recipient.url,
            "recipientFinalSync": self.phones[pair.recipient].final,
        }

    def tally(self, world: World) -> SoakTally:
        """How the messages ended, after the final syncs: what the parent adds up."""
        lost = unacked = unacked_seen = failed = never_written = 0
        lost_samples: list[Sample] = []
        failed_codes: Counter[str] = Counter()
        for message_id, record in self.records.items():
            if record.acked_ns and not record.seen:
                lost += 1
                if len(lost_samples) < SAMPLES:
                    lost_samples.append(self.lost_sample(message_id, record))
            elif record.failed:
                failed += 1
                failed_codes[record.failed] += 1
            elif record.seen:
                unacked_seen += 1
            else:
                unacked += 1
                if not record.writes:
                    never_written += 1
        recipients = [p for p in self.phones.values() if p.user.role == "recipient"]
        histories, redialer = self.histories, self.redialer
        return SoakTally(
            acked_ids=len(self.outboxes.ack_ts),
            lost=lost,
            lost_samples=lost_samples,
            unacked=unacked,
            unacked_never_written=never_written,
            unacked_but_delivered=unacked_seen,
            failed=failed,
            failed_codes=dict(failed_codes),
            duplicates=histories.n["duplicates"],
            duplicate_samples=histories.duplicate_samples,
            redelivered=dict(histories.redelivered),
            unexpected=histories.n["unexpected"],
            corrupted=histories.n["corrupted"],
            seq_gaps=histories.n["seq_gaps"],
            not_stored=histories.n["not_stored"],
            reconnect_gave_up=redialer.gave_up,
            reconnect_times=redialer.reconnect_times,
            refusals=dict(redialer.refusals),
            final_sync_ok=sum(1 for p in recipients if p.final == "ok"),
            final_sync_failed=sum(1 for p in recipients if p.final != "ok"),
        )


def build_soak(world: World, plan: SoakPlan, urls: list[str], dial: Dial) -> SoakMessages:
    messages = SoakMessages(world, plan, urls, dial)
    world.add(messages)
    return messages
