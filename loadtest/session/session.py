"""A ``Session`` is one population of phones against one target, from the servers to the last
numbers: start the servers (or use the given URLs), start the workers, register the users,
connect them, then either hold them (idle) or drive a rate schedule (run, step, soak).

It owns the order of those phases and their deadlines; what it works with are small objects
that each own one thing (``Servers``, ``WorkerPool``, ``Replies``, ``Collected``,
``Timeline``, ``Progress``). The modes (``loadtest/modes/``) turn what it gathered into their
typed result.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from loadtest.model.common import Header, Machine, MessageTotals, SetupInfo
from loadtest.model.timeline import Resources, Second
from loadtest.monitor import Monitor, cpu_count
from loadtest.options import Options
from loadtest.pipe import Connect, Halt, Start, Tick, WorkerMessage
from loadtest.plan import HUB, Segment, SoakPlan
from loadtest.session.collected import Collected
from loadtest.session.failure import RunFailed
from loadtest.session.population import population_for, worker_plans
from loadtest.session.progress import Progress, run_line
from loadtest.session.replies import Replies
from loadtest.session.resources import summarize
from loadtest.session.schedule import Schedule
from loadtest.session.servers import Servers
from loadtest.session.timeline import SoakColumns, Timeline
from loadtest.session.workers import WorkerPool


@dataclass(frozen=True)
class DriveHooks:
    """What a mode adds to the drive loop; the defaults suit run and compare."""

    on_second: Callable[[int], None] | None = None  # after each timeline row (step: judge)
    watch: Callable[[Schedule], None] | None = None  # instead of failing on a server exit
    soak_columns: SoakColumns | None = None


class Session:
    """One population of phones against one target; a mode calls ``setup`` then ``drive``
    (or holds the sockets), and reads its pieces to build the result."""

    def __init__(
        self,
        options: Options,
        kind: str,
        *,
        phones: SoakPlan | None = None,
        line: Callable[[Second], str] | None = None,
        finish_grace_s: float = 60.0,  # beyond duration + drain: the workers' last words
    ) -> None:
        self.options = options
        self.kind = kind
        self.phones = phones
        self.finish_grace_s = finish_grace_s
        self.monitor = Monitor()
        self.mode_line = line  # None: run_line, which names the hub nodes once they started
        self.progress = Progress(options.quiet, line or partial(run_line, servers=1))
        self.population = population_for(options, kind)
        self.replies = Replies()
        self.collected = Collected()
        self.timeline = Timeline(self.collected, lambda: self.monitor.sample(self.elapsed()))
        self.servers: Servers | None = None
        self.pool: WorkerPool | None = None
        self.setup_info: SetupInfo | None = None
        self.schedule: Schedule | None = None
        self.halted_at_s = math.inf  # seconds after the start, when a mode halted the drive
        self._t0 = time.monotonic()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    @property
    def urls(self) -> list[str]:
        return self.servers.urls if self.servers is not None else []

    # -- setup --------------------------------------------------------------------------

    def setup(self) -> None:
        """Servers, workers, registered users and connected sockets, all within deadlines."""
        o, say = self.options, self.progress.say
        self.servers = Servers.start(o, self.monitor, self.progress)
        if self.mode_line is None:
            self.progress.line = partial(run_line, servers=len(self.servers.urls))
        plans = worker_plans(o, self.servers.urls, self.population, self.kind, self.phones)
        self.pool = pool = WorkerPool(plans)
        self.monitor.add("driver", [os.getpid(), *pool.start()])
        clients, p = pool.clients, self.population
        what = "registering" if o.target == HUB else "generating"
        say(
            f"{what} {clients} users ({p.pairs} pairs, {p.churners} churning, "
            f"{p.idle} idle) in {len(plans)} worker(s)…"
        )
        started = time.monotonic()
        self.wait_for(self.replies.registered, "register", 120 + clients / 10)
        register_s = round(time.monotonic() - started, 1)
        time.sleep(1.0)
        self.monitor.sample(self.elapsed())
        rss_before = self.monitor.rss("server")
        say(f"connecting {clients} sockets…")
        started = time.monotonic()
        pool.broadcast(Connect())
        self.wait_for(self.replies.ready, "connect", 120 + clients / 20)
        connect_s = round(time.monotonic() - started, 1)
        connected = self.replies.connected()
        errors = self.replies.setup_errors
        self.setup_info = SetupInfo(
            self.servers.description, register_s, rss_before, connect_s, connected, clients
        )
        say(
            f"  {connected}/{clients} connected in {connect_s} s"
            + (f"; setup errors {dict(errors)}" if errors else "")
        )

    def wait_for(self, replies: Mapping[int, object], phase: str, timeout: float) -> None:
        """Until every worker has replied for ``phase``; RunFailed after ``timeout``."""
        assert self.pool is not None
        deadline = time.monotonic() + timeout
        last_print = 0.0
        started = time.monotonic()
        while len(replies) < len(self.pool):
            if time.monotonic() > deadline:
                raise RunFailed(f"{phase}: workers not done in {timeout:.0f} s")
            self.receive(0.2)
            self.watch_servers()
            now = time.monotonic()
            if now - last_print >= 1.0 and self.replies.progress:
                last_print = now
                done = self.replies.done(phase)
                self.progress.phase(phase, done, self.pool.clients, started)

    def receive(self, timeout: float) -> None:
        """Handle what the workers sent within ``timeout`` seconds."""
        assert self.pool is not None
        self.pool.pump(timeout, self.handle)

    def watch_servers(self, watch: Callable[[], None] | None = None) -> None:
        """RunFailed if a server died, unless the mode watches them itself (the soak)."""
        if watch is not None:
            watch()
        elif self.servers is not None:
            self.servers.check()

    def handle(self, index: int, message: WorkerMessage) -> None:
        if isinstance(message, Tick):
            self.timeline.add(index, message)
        else:
            self.replies.record(index, message)

    # -- driving ------------------------------------------------------------------------

    def drive(
        self, segments: list[Segment], duration_s: float, hooks: DriveHooks | None = None
    ) -> Schedule:
        """Start the schedule in every worker at the same instant; gather until all finish."""
        assert self.pool is not None
        pool, hooks = self.pool, hooks or DriveHooks()
        schedule = self.schedule = Schedule.starting_in(1.0, segments, duration_s)
        pool.broadcast(Start(schedule.start_ns, segments, duration_s))
        grace = 1 + duration_s + self.options.drain_timeout + self.finish_grace_s
        deadline = time.monotonic() + grace
        self.monitor.sample(self.elapsed())
        watch = partial(hooks.watch, schedule) if hooks.watch is not None else None
        while len(self.replies.finals) < len(pool):
            if time.monotonic() > deadline:
                raise RunFailed("the workers did not finish in time")
            self.receive(0.2)
            self.watch_servers(watch)
            running = len(pool) - len(self.replies.finals)
            for row in self.timeline.complete_rows(running, schedule, hooks.soak_columns):
                self.progress.second(row)
                if hooks.on_second is not None:
                    hooks.on_second(row.t)
        self.timeline.absorb_rest()
        return schedule

    def halt(self) -> None:
        """Stop every worker's schedule now (a failed step): they drain and report."""
        if self.pool is not None and self.schedule is not None and math.isinf(self.halted_at_s):
            self.halted_at_s = self.schedule.seconds_at(time.monotonic_ns())
            self.pool.broadcast(Halt())

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        if self.pool is not None:
            self.pool.finish()

    def close(self) -> None:
        """On every exit: the workers, then the servers, even if stopping the workers failed."""
        try:
            if self.pool is not None:
                self.pool.close()
        finally:
            if self.servers is not None:
                self.servers.stop(self.progress)

    # -- what it gathered ---------------------------------------------------------------

    def header(self) -> Header:
        assert self.setup_info is not None
        o = self.options
        return Header(
            kind=self.kind,
            target=o.target,
            servers=len(self.urls),
            urls=self.urls,
            options=o,
            hub_env=o.hub_env,
            mix=o.effective_mix(),
            population=self.population,
            machine=Machine(cpus=cpu_count(), python=sys.version.split()[0]),
            setup=self.setup_info,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )

    def message_totals(self) -> tuple[MessageTotals, list[float]]:
        """The direct messages' totals over all workers, and the send second of each lost one
        (the step verdicts count loss per step)."""
        tallies = self.replies.direct_tallies()
        lost_samples = [s for t in tallies for s in t.lost_samples]
        lost_seconds = [s for t in tallies for s in t.lost_seconds]

        def total(name: str) -> int:
            return sum(getattr(t, name) for t in tallies)

        totals = MessageTotals(
            delivered=total("delivered"),
            duplicated=total("duplicated"),
            corrupted=total("corrupted"),
            unexpected=total("unexpected"),
            ack_failed=total("ack_failed"),
            unacked=total("unacked"),
            unacked_sender_disconnected=total("unacked_sender_disconnected"),
            lost=total("lost"),
            undeliverable=total("undeliverable"),
            sent=self.collected.counters.get("sent", 0),
            acked=self.collected.counters.get("acked", 0),
            connected_at_end=self.replies.connected_at_end(),
            lost_samples=lost_samples[:20],
            offline_acked=total("offline_acked"),
        )
        return totals, lost_seconds

    def resources(self, start_s: float, end_s: float) -> Resources:
        return summarize(self.timeline.rows, self.monitor.groups, start_s, end_s)
