"""The soak's phones: direct messages that survive hub nodes being killed, as the app does it.

``SoakMessages`` replaces ``DirectMessages`` in ``python -m loadtest soak``. Every phone keeps
what the app keeps:

* **Senders** have an outbox. A message is created when the open-loop schedule says so and
  written at once if the socket is up, else queued. It leaves the outbox with an ``ok`` ack.
  A write whose socket dropped, or that had no ack within ``--ack-timeout``, is written
  again *with the same id* (the hub answers a resend with the original ``{id, ts}``); a
  retryable refusal (``unavailable``, ``rate_limited``) is retried after a second. At most
  ``1 + resend_attempts`` writes per message.
* **Recipients** de-duplicate by message id and keep the highest ``seq`` below which they hold
  everything. After a reconnect they call ``message:sync {after: that seq}`` page by page until
  ``more`` is false; a ``message:new`` that skips a ``seq`` starts the same sync if the gap is
  still open ``gap_sync_delay_s`` later.
* **Any phone** whose socket drops reconnects with backoff, trying the other nodes in turn
  (then its own), at most ``reconnect_attempts`` times per drop; the time from the drop to the
  new connection is its *reconnect time*.

After the drain every recipient lists its whole history (``message:sync`` from 0): what it had
not seen yet is *recovered by the final sync*; an id listed twice, or under a ``seq`` other than
the one it arrived with, is a *duplicate* (the hub stored or numbered it twice); a message whose
sender got an ``ok`` ack and that the recipient never saw, live or by any sync, is *lost*.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from loadtest.crypto import plaintext_size
from loadtest.plan import SoakPlan
from loadtest.protocol import BaseSocket, ConnectRefused
from loadtest.scenario import NS, Activity, Pair, User, World

Dial = Callable[[User, str, float], Awaitable[BaseSocket]]

RETRYABLE = frozenset({"unavailable", "rate_limited"})
LIVE, SYNC, FINAL = "live", "sync", "final"
SAMPLES = 20


class SocketLost(ConnectionError):
    """The socket dropped while a call on it waited for its ack."""


class Record:
    """One message from creation until it is both acked and seen by its recipient."""

    __slots__ = (
        "acked_ns",
        "body",
        "failed",
        "gen",
        "intended_ns",
        "pair",
        "retry_at_ns",
        "seen",
        "sent_ns",
        "writes",
    )

    def __init__(self, intended_ns: int, pair: Pair, body: dict[str, Any]) -> None:
        self.intended_ns = intended_ns
        self.pair = pair
        self.body: dict[str, Any] | None = body
        self.acked_ns = 0
        self.writes = 0
        self.gen = 0  # the connection generation it was last written on (0: never; -1: retry)
        self.sent_ns = 0
        self.retry_at_ns = 0
        self.seen = False
        self.failed = ""


@dataclass(eq=False)
class Phone:
    user: User
    gen: int = 0  # +1 on every connection
    recovering: bool = False
    dropped_ns: int = 0
    calls: set[asyncio.Future[Any]] = field(default_factory=set)
    # sender
    outbox: dict[str, Record] = field(default_factory=dict)
    # recipient: id -> seq of everything it holds; every seq <= top is held
    seen: dict[str, int] = field(default_factory=dict)
    top: int = 0
    above: set[int] = field(default_factory=set)
    syncing: bool = False
    gap_armed: bool = False
    final: str = ""  # "" (not done), "ok" or why it failed


class SoakMessages(Activity):
    paced = True

    def __init__(self, world: World, plan: SoakPlan, urls: list[str], dial: Dial) -> None:
        self.world = world
        self.plan = plan
        self.urls = urls
        self.dial = dial
        self.records: dict[str, Record] = {}  # not yet both acked and seen
        self.ack_ts: dict[str, int] = {}  # every acked id -> the ts of its first ack
        self.phones: dict[User, Phone] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.checker: asyncio.Task[None] | None = None
        self.ack_timeout_ns = 10 * NS
        self.reconnect_times: list[tuple[float, float]] = []  # (drop at s, ms to reconnect)
        self.refusals: Counter[str] = Counter()
        self.redelivered: Counter[str] = Counter()
        self.n: Counter[str] = Counter()  # outcome counters for the final numbers
        self.duplicate_samples: list[dict[str, Any]] = []
        world.disconnect_hooks.append(self.on_drop)

    # -- plumbing -----------------------------------------------------------------------

    def events(self) -> dict[str, Callable[[User, Any], None]]:
        return {"message:new": self.on_message}

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def call(self, phone: Phone, event: str, data: Any, timeout: float) -> Any:
        """Emit and wait for the ack; ``SocketLost`` if the socket drops first."""
        sock = phone.user.sock
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(ack: Any) -> None:
            if not future.done():
                future.set_result(ack)

        if sock is None or not sock.emit(event, data, resolve):
            raise SocketLost(event)
        phone.calls.add(future)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            phone.calls.discard(future)

    async def setup(self, world: World) -> None:
        for user in world.users:
            phone = Phone(user, gen=1 if user.connected else 0)
            self.phones[user] = phone
        for phone in self.phones.values():
            if not phone.user.connected:  # the first connect failed: keep trying like a phone
                phone.dropped_ns = time.monotonic_ns()
                self.spawn(self.recover(phone))

    def start(self, world: World) -> None:
        self.checker = asyncio.get_running_loop().create_task(self.check_outboxes())

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
                if not phone.user.connected and not await self.reconnect(phone):
                    return
                await self.catch_up(phone)
                if phone.user.connected:
                    return
        finally:
            phone.recovering = False

    def candidates(self, user: User) -> list[str]:
        """The other nodes, in an order that spreads phones over them, then its own."""
        n = len(self.urls)
        current = self.urls.index(user.url) if user.url in self.urls else 0
        if n == 1:
            return [self.urls[0]]
        start = user.index % (n - 1)
        others = [self.urls[(current + 1 + (start + j) % (n - 1)) % n] for j in range(n - 1)]
        return [*others, self.urls[current]]

    async def reconnect(self, phone: Phone) -> bool:
        user, plan, stats = phone.user, self.plan, self.world.stats
        order = self.candidates(user)
        for attempt in range(plan.reconnect_attempts):
            base = min(plan.backoff_max_s, plan.backoff_s * 2**attempt)
            await asyncio.sleep(base * self.world.rng.uniform(0.5, 1.0))
            if self.world.closing:
                return False
            url = order[attempt % len(order)]
            try:
                sock = await self.dial(user, url, plan.connect_timeout_s)
            except ConnectRefused as exc:
                self.refusals[f"refused:{exc.code}"] += 1
                continue
            except Exception as exc:  # refused by the kernel, reset, timed out: next node
                self.refusals[f"error:{type(exc).__name__}"] += 1
                continue
            if self.world.closing:
                await sock.close()
                return False
            user.sock = sock
            user.url = url
            phone.gen += 1
            now = time.monotonic_ns()
            self.reconnect_times.append(
                (self.world.rel_s(phone.dropped_ns), (now - phone.dropped_ns) / 1e6)
            )
            stats.count("reconnects")
            return True
        stats.error("reconnect:gave_up")
        self.n["reconnect_gave_up"] += 1
        return False

    async def catch_up(self, phone: Phone) -> None:
        if phone.user.role == "recipient":
            if await self.sync(phone, phone.top, SYNC):
                self.world.stats.count("reconnect_syncs")
        else:
            self.flush(phone)

    # -- sending ------------------------------------------------------------------------

    def fire(self, world: World, intended_ns: int) -> None:
        pair = world.pairs[world.rng.randrange(len(world.pairs))]
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

    async def check_outboxes(self) -> None:
        """Twice a second: resend what waited longer than the ack timeout on a live socket,
        and retries that are due."""
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
            return
        world.ack_error("message:send", ack)
        if record is None or record.acked_ns or message_id in self.ack_ts:
            return
        code = _error_code(ack)
        phone = self.phones[record.pair.sender]
        if code in RETRYABLE:
            record.gen = -1
            record.retry_at_ns = now + int(self.plan.retry_after_s * NS)
            return
        record.failed = code
        phone.outbox.pop(message_id, None)

    # -- receiving ----------------------------------------------------------------------

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
        pair = record.pair
        try:
            assert pair.open_channel is not None
            sealed_id, _ = pair.open_channel.open(data["ciphertext"], data["nonce"])
        except Exception:
            sealed_id = ""
        if sealed_id != message_id or data.get("from") != pair.sender.user_id:
            self.n["corrupted"] += 1
            world.stats.count("corrupted")
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
        record.seen = True
        if record.acked_ns:
            del self.records[message_id]

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
                    ack = await self.call(
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
            result = await self.final_listing(phone)
            if result == "ok" or phone.user.connected:
                return result
        return "socket kept dropping"

    async def final_listing(self, phone: Phone) -> str:
        listed: dict[str, int] = {}
        after = 0
        for _ in range(10_000):
            try:
                ack = await self.call(
                    phone,
                    "message:sync",
                    {"after": after, "limit": self.plan.sync_page},
                    self.plan.sync_timeout_s,
                )
            except (SocketLost, TimeoutError) as exc:
                return f"sync {type(exc).__name__}"
            if not (isinstance(ack, dict) and ack.get("ok") is True):
                self.world.ack_error("message:sync", ack)
                return f"sync refused {_error_code(ack)}"
            messages = ack.get("messages") or []
            for message in messages:
                message_id, seq = message.get("id"), message.get("seq")
                if not isinstance(message_id, str) or not isinstance(seq, int):
                    self.n["unexpected"] += 1
                    continue
                if message_id in listed:
                    self.duplicate(phone, message_id, listed[message_id], seq, "final listing")
                    continue
                listed[message_id] = seq
                if message_id in phone.seen:
                    if phone.seen[message_id] != seq:
                        self.duplicate(phone, message_id, phone.seen[message_id], seq, FINAL)
                else:
                    self.receive(phone, message, FINAL)
            if messages:
                after = max(after, int(messages[-1]["seq"]))
            if not ack.get("more") or not messages:
                break
        seqs = sorted(listed.values())
        if seqs and seqs[-1] != len(seqs):
            self.n["seq_gaps"] += seqs[-1] - len(seqs)
        self.n["not_stored"] += sum(1 for m in phone.seen if m not in listed)
        return "ok"

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

    def final(self, world: World) -> dict[str, Any]:
        lost = unacked = unacked_seen = failed = never_written = 0
        lost_samples: list[dict[str, Any]] = []
        failed_codes: Counter[str] = Counter()
        for message_id, record in self.records.items():
            pair = record.pair
            if record.acked_ns and not record.seen:
                lost += 1
                if len(lost_samples) < SAMPLES:
                    lost_samples.append(
                        {
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
                    )
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
        return {
            "acked_ids": len(self.ack_ts),
            "lost": lost,
            "lost_samples": lost_samples,
            "unacked": unacked,
            "unacked_never_written": never_written,
            "unacked_but_delivered": unacked_seen,
            "failed": failed,
            "failed_codes": dict(failed_codes),
            "duplicates": self.n["duplicates"],
            "duplicate_samples": self.duplicate_samples,
            "redelivered": dict(self.redelivered),
            "unexpected": self.n["unexpected"],
            "corrupted": self.n["corrupted"],
            "seq_gaps": self.n["seq_gaps"],
            "not_stored": self.n["not_stored"],
            "reconnect_gave_up": self.n["reconnect_gave_up"],
            "reconnect_times": self.reconnect_times,
            "refusals": dict(self.refusals),
            "final_sync_ok": sum(1 for p in recipients if p.final == "ok"),
            "final_sync_failed": sum(1 for p in recipients if p.final != "ok"),
            "connected": world.connected_count(),
        }


def _error_code(ack: Any) -> str:
    if isinstance(ack, dict):
        error = ack.get("error")
        if isinstance(error, dict):
            return str(error.get("code", "unknown"))
    return "bad_ack"


def build_soak(world: World, plan: SoakPlan, urls: list[str], dial: Dial) -> SoakMessages:
    messages = SoakMessages(world, plan, urls, dial)
    world.add(messages)
    return messages
