"""The parent process: targets, worker processes, progress, evaluation and the result.

A ``Session`` is one population of phones against one target: start the servers (or use
the given URLs), start the workers, register users, connect them, then either hold them
(idle) or drive a rate schedule (run, step), and gather everything into a result dict that
``report`` prints, saves and charts.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import secrets
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from loadtest.fleet import Fleet
from loadtest.monitor import Monitor, cpu_count
from loadtest.phones import worker as worker_module
from loadtest.pipe import (
    Close,
    Connect,
    DirectTally,
    Failed,
    Final,
    Halt,
    ParentMessage,
    PhaseProgress,
    Ready,
    Registered,
    Start,
    Tick,
    WorkerMessage,
)
from loadtest.plan import HUB, Mix, PairPlan, Segment, WorkerPlan, split_round_robin
from loadtest.stats import Samples, fmt_ms, p99_with_missing, summary

NS = 1_000_000_000


class RunFailed(Exception):
    """The session could not run (a server or a worker failed); not a missed target."""


@dataclass
class Options:
    target: str = HUB
    hub_urls: list[str] = field(default_factory=list)
    spawn_hubs: int = 1
    hub_pids: list[int] = field(default_factory=list)
    hub_env: dict[str, str] = field(default_factory=dict)
    clients: int = 2000
    rate: float = 1000.0
    duration: float = 60.0
    mix: str = "chat"
    workers: int = 2
    client_kind: str = "raw"
    placement: str = "split"
    register_concurrency: int = 16
    connect_concurrency: int = 50
    drain_timeout: float = 15.0
    ack_timeout: float = 30.0
    seed: int = 1
    quiet: bool = False
    keep: bool = False

    def effective_mix(self) -> Mix:
        # the relays only relay message:send: receipts, typing and presence need the hub
        return Mix.named(self.mix if self.target == HUB else "dm")


def say(text: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(text, flush=True)


class Session:
    finish_grace_s = 60.0  # beyond duration + drain: the workers' last words

    def __init__(self, options: Options, kind: str) -> None:
        self.o = options
        self.kind = kind
        self.fleet: Fleet | None = None
        self.urls: list[str] = []
        self.monitor = Monitor()
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.plans: list[WorkerPlan] = []
        self.progress: dict[int, PhaseProgress] = {}
        self.ticks: dict[int, dict[int, Tick]] = {}
        self.finals: dict[int, Final] = {}
        self.ready: dict[int, Ready] = {}
        self.registered: dict[int, Registered] = {}
        self.ack = Samples()
        self.e2e = Samples()
        self.other_ack_chunks: list[bytes] = []
        self.halted_by_close = False
        self.last_connections: dict[int, int] = {}
        self.halted_at_s = math.inf
        self.segments: list[Segment] = []
        self.duration_s = 0.0
        self.timeline: list[dict[str, Any]] = []
        self.sent_by_second: Counter[int] = Counter()
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.setup_errors: Counter[str] = Counter()
        self.halted = False
        self.started_ns = 0
        self.info: dict[str, Any] = {}
        self.pairs = 0
        self.churners = 0
        self.idle = 0
        self._next_row = 1
        self._t0 = time.monotonic()

    # -- servers ------------------------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_servers(self) -> None:
        o = self.o
        if o.hub_urls:
            self.urls = [u.rstrip("/") for u in o.hub_urls]
            if o.hub_pids:
                self.monitor.add("server", o.hub_pids)
            self.info["servers"] = "external"
            return
        self.fleet = Fleet(keep=o.keep)
        started = time.monotonic()
        if o.target == HUB:
            say(f"starting PostgreSQL, Redis and {o.spawn_hubs} hub node(s)…", quiet=o.quiet)
            servers = self.fleet.start_hubs(o.spawn_hubs, o.hub_env)
            self.monitor.add("postgres", [self.fleet.postgres_pid], children=True)
            self.monitor.add("redis", [self.fleet.redis_pid])
        else:
            say(f"starting the {o.target}…", quiet=o.quiet)
            servers = [self.fleet.start_peer(o.target)]
        self.urls = [s.url for s in servers]
        self.monitor.add("server", [s.process.pid for s in servers])
        if len(servers) > 1:
            for number, server in enumerate(servers, 1):
                self.monitor.add(f"server{number}", [server.process.pid])
        self.info["servers"] = f"spawned in {time.monotonic() - started:.1f} s"
        say(f"  {', '.join(self.urls)} ({self.fleet.workdir})", quiet=o.quiet)

    # -- workers ------------------------------------------------------------------------

    def build_plans(self) -> None:
        o = self.o
        mix = o.effective_mix()
        n = len(self.urls)
        run_id = secrets.token_hex(4)
        if self.kind == "idle":
            self.pairs, self.churners, self.idle = 0, 0, o.clients
        else:
            churners = round(o.clients * mix.churn_fraction) if mix.churn_fraction else 0
            self.pairs = max(1, (o.clients - churners) // 2)
            self.churners = churners + (o.clients - churners - 2 * self.pairs if churners else 0)
        workers = max(1, min(o.workers, max(self.pairs, self.idle, 1)))

        def sender_url(p: int) -> str:
            if n == 1:
                return self.urls[0]
            if o.placement == "split":
                return self.urls[p % max(1, n // 2)]
            return self.urls[p % n]

        def recipient_url(p: int) -> str:
            if n == 1:
                return self.urls[0]
            if o.placement == "split":
                half = max(1, n // 2)
                return self.urls[half + p % (n - half)]
            return self.urls[(p + 1) % n]

        for w in range(workers):
            pairs = [
                PairPlan(p, sender_url(p), recipient_url(p))
                for p in split_round_robin(self.pairs, workers, w)
            ]
            self.plans.append(
                WorkerPlan(
                    index=w,
                    workers=workers,
                    run_id=run_id,
                    target=o.target,
                    client_kind=o.client_kind,
                    mix=mix,
                    rest_urls=self.urls,
                    pairs=pairs,
                    churner_urls=[
                        self.urls[i % n] for i in split_round_robin(self.churners, workers, w)
                    ],
                    idle_urls=[self.urls[i % n] for i in split_round_robin(self.idle, workers, w)],
                    register_concurrency=o.register_concurrency,
                    connect_concurrency=o.connect_concurrency,
                    ack_timeout_s=o.ack_timeout,
                    drain_timeout_s=o.drain_timeout,
                    seed=o.seed,
                    rate_share=len(pairs) / self.pairs if self.pairs else 0.0,
                    with_keys=self.kind != "idle",
                )
            )

    def start_workers(self) -> None:
        context = multiprocessing.get_context("spawn")
        for plan in self.plans:
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_module.main,
                args=(plan, child),
                daemon=True,
                name=f"loadtest-worker-{plan.index}",
            )
            process.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(process)
        self.monitor.add("driver", [os.getpid(), *[p.pid for p in self.procs if p.pid]])

    def broadcast(self, message: ParentMessage) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(message)

    def pump(self, timeout: float) -> None:
        """Handle whatever the workers sent within ``timeout`` seconds."""
        live = [c for c in self.conns if not c.closed]
        for ready in wait(live, timeout):
            assert isinstance(ready, Connection)
            conn = ready
            index = self.conns.index(conn)
            try:
                while conn.poll():
                    self.handle(index, conn.recv())
            except EOFError:
                conn.close()
                if index not in self.finals and not self.halted_by_close:
                    raise RunFailed(f"worker {index} exited unexpectedly") from None

    def handle(self, index: int, message: WorkerMessage) -> None:
        if isinstance(message, PhaseProgress):
            self.progress[index] = message
        elif isinstance(message, Registered):
            self.registered[index] = message
        elif isinstance(message, Ready):
            self.ready[index] = message
            self.setup_errors.update(message.errors)
        elif isinstance(message, Tick):
            self.ticks.setdefault(message.index, {})[index] = message
        elif isinstance(message, Final):
            self.finals[index] = message
        elif isinstance(message, Failed):
            raise RunFailed(f"worker {index} failed:\n{message.traceback}")

    def wait_for(self, what: dict[int, Any], phase: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_print = 0.0
        started = time.monotonic()
        while len(what) < len(self.conns):
            if time.monotonic() > deadline:
                raise RunFailed(f"{phase}: workers not done in {timeout:.0f} s")
            self.pump(0.2)
            self.check_servers()
            now = time.monotonic()
            if now - last_print >= 1.0 and self.progress:
                last_print = now
                done = sum(p.done for p in self.progress.values() if p.phase == phase)
                total = sum(len_users(p) for p in self.plans)
                if done:
                    rate = done / max(1e-6, now - started)
                    say(f"  {phase}: {done}/{total} users ({rate:.0f}/s)", quiet=self.o.quiet)

    def check_servers(self) -> None:
        if self.fleet is None:
            return
        for server in self.fleet.servers:
            if server.process.poll() is not None:
                raise RunFailed(
                    f"{server.name} exited (code {server.process.returncode}):\n{server.log_tail()}"
                )

    # -- phases -------------------------------------------------------------------------

    def setup(self) -> None:
        o = self.o
        self.start_servers()
        self.build_plans()
        self.start_workers()
        clients = sum(len_users(p) for p in self.plans)
        what = "registering" if o.target == HUB else "generating"
        say(
            f"{what} {clients} users ({self.pairs} pairs, {self.churners} churning, "
            f"{self.idle} idle) in {len(self.plans)} worker(s)…",
            quiet=o.quiet,
        )
        started = time.monotonic()
        self.wait_for(self.registered, "register", 120 + clients / 10)
        self.info["register_s"] = round(time.monotonic() - started, 1)
        time.sleep(1.0)
        self.monitor.sample(self.elapsed())
        self.info["server_rss_before_connect"] = self.monitor.rss("server")
        say(f"connecting {clients} sockets…", quiet=o.quiet)
        started = time.monotonic()
        self.broadcast(Connect())
        self.wait_for(self.ready, "connect", 120 + clients / 20)
        self.info["connect_s"] = round(time.monotonic() - started, 1)
        connected = sum(r.connected for r in self.ready.values())
        self.info["connected_at_start"] = connected
        self.info["clients"] = clients
        say(
            f"  {connected}/{clients} connected in {self.info['connect_s']} s"
            + (f"; setup errors {dict(self.setup_errors)}" if self.setup_errors else ""),
            quiet=o.quiet,
        )

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def drive(
        self,
        segments: list[Segment],
        duration_s: float,
        on_second: Callable[[Session, int], None] | None = None,
    ) -> None:
        """Start the schedule in every worker at the same instant; gather until all finish."""
        self.segments = segments
        self.duration_s = duration_s
        self.started_ns = time.monotonic_ns() + int(1.0 * NS)
        self.broadcast(Start(self.started_ns, segments, duration_s))
        deadline = time.monotonic() + 1 + duration_s + self.o.drain_timeout + self.finish_grace_s
        self.monitor.sample(self.elapsed())
        while len(self.finals) < len(self.conns):
            if time.monotonic() > deadline:
                raise RunFailed("the workers did not finish in time")
            self.pump(0.2)
            self.check_servers()
            while self._row_complete(self._next_row):
                self.add_row(self._next_row)
                if on_second is not None:
                    on_second(self, self._next_row)
                self._next_row += 1
        # what is left: ticks of workers that finished early, and the final partial tick
        for index in sorted(self.ticks):
            if index >= self._next_row or index == -1:
                self.absorb(self.ticks.pop(index))

    def halt(self) -> None:
        if not self.halted:
            self.halted = True
            self.halted_at_s = (time.monotonic_ns() - self.started_ns) / NS
            self.broadcast(Halt())

    def _row_complete(self, index: int) -> bool:
        got = self.ticks.get(index)
        return got is not None and len(got) >= len(self.conns) - len(self.finals)

    def absorb(self, per_worker: dict[int, Tick]) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "counters": Counter(),
            "errors": Counter(),
            "connections": 0,
            "overdue": 0,
            "in_flight": 0,
            "write_buffer": 0,
            "max_lag_ms": 0.0,
            "gauges": Counter(),
        }
        ack, e2e = Samples(), Samples()
        for index, tick in per_worker.items():
            stats = tick.interval
            self.last_connections[index] = tick.connections
            merged["counters"].update(stats.counters)
            merged["errors"].update(stats.errors)
            merged["gauges"].update(tick.gauges)
            merged["overdue"] += tick.overdue
            merged["in_flight"] += tick.in_flight
            merged["write_buffer"] = max(merged["write_buffer"], tick.write_buffer)
            merged["max_lag_ms"] = max(merged["max_lag_ms"], stats.max_lag_ms)
            self.ack.add(stats.ack)
            self.e2e.add(stats.e2e)
            if stats.other_ack:
                self.other_ack_chunks.append(stats.other_ack)
            ack.add(stats.ack)
            e2e.add(stats.e2e)
            self.sent_by_second.update(stats.sent_by_second)
        merged["connections"] = sum(self.last_connections.values())
        self.counters.update(merged["counters"])
        self.errors.update(merged["errors"])
        merged["ack_ms"] = ack.latencies()
        merged["e2e_ms"] = e2e.latencies()
        return merged

    def add_row(self, index: int) -> None:
        merged = self.absorb(self.ticks.pop(index))
        row = self.build_row(index, merged)
        self.timeline.append(row)
        if not self.o.quiet:
            print(self.progress_text(row), flush=True)

    def progress_text(self, row: dict[str, Any]) -> str:
        return progress_line(row, len(self.urls))

    def build_row(self, index: int, merged: dict[str, Any]) -> dict[str, Any]:
        """One second of the timeline from the workers' merged ticks and a resource sample."""
        c = merged["counters"]
        ack = summary(merged["ack_ms"])
        e2e = summary(merged["e2e_ms"])
        resources = self.monitor.sample(self.elapsed())
        row: dict[str, Any] = {
            "t": index,
            "sent": c.get("sent", 0),
            "acked": c.get("acked", 0),
            "delivered": c.get("delivered", 0),
            "errors": sum(merged["errors"].values()),
            "error_codes": dict(merged["errors"]),
            "ack_p50": ack["p50"],
            "ack_p99": ack["p99"],
            "e2e_p50": e2e["p50"],
            "e2e_p99": e2e["p99"],
            "connections": merged["connections"],
            "overdue": merged["overdue"],
            "in_flight": merged["in_flight"],
            "max_lag_ms": round(merged["max_lag_ms"], 1),
            "write_buffer": merged["write_buffer"],
            "target_rate": self.rate_at(index - 0.5),
        }
        row.update({k: v for k, v in resources.items() if k != "t"})
        return row

    def rate_at(self, t: float) -> float:
        if t >= self.duration_s:
            return 0.0
        rate = 0.0
        for segment in self.segments:
            if t >= segment.at_s:
                rate = segment.rate
        return rate

    def other_ack_values(self) -> np.ndarray:
        flat = array("d")
        for chunk in self.other_ack_chunks:
            flat.frombytes(chunk)
        return np.frombuffer(flat, dtype=np.float64).copy()

    def finish(self) -> None:
        self.halted_by_close = True
        self.broadcast(Close())
        deadline = time.monotonic() + 60
        for process in self.procs:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.procs:
            if process.is_alive():
                process.terminate()
                process.join(5)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.finish()
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.close()
        if self.fleet is not None:
            say("stopping the servers…", quiet=self.o.quiet)
            self.fleet.stop()
            self.fleet = None

    # -- results ------------------------------------------------------------------------

    def final_totals(self) -> dict[str, Any]:
        keys = (
            "delivered",
            "duplicated",
            "corrupted",
            "unexpected",
            "ack_failed",
            "unacked",
            "unacked_sender_disconnected",
            "lost",
            "undeliverable",
        )
        totals: dict[str, Any] = {k: 0 for k in keys}
        lost_samples: list[dict[str, Any]] = []
        lost_seconds: list[float] = []
        for final in self.finals.values():
            tally = final.tally
            assert isinstance(tally, DirectTally)
            for key in keys:
                totals[key] += getattr(tally, key)
            lost_samples.extend(tally.lost_samples)
            lost_seconds.extend(tally.lost_seconds)
        totals["sent"] = self.counters.get("sent", 0)
        totals["acked"] = self.counters.get("acked", 0)
        totals["connected_at_end"] = sum(f.connected for f in self.finals.values())
        totals["lost_samples"] = lost_samples[:20]
        totals["lost_seconds"] = lost_seconds
        return totals

    def resource_summary(self, start_s: float, end_s: float) -> dict[str, Any]:
        rows = [r for r in self.timeline if start_s < r["t"] <= end_s]
        out: dict[str, Any] = {}
        for name in self.monitor.groups:
            cpu = [r[f"{name}_cpu"] for r in rows if f"{name}_cpu" in r]
            rss = [r[f"{name}_rss_mb"] for r in rows if f"{name}_rss_mb" in r]
            if cpu:
                out[f"{name}_cpu_avg"] = round(float(np.mean(cpu)), 1)
                out[f"{name}_cpu_max"] = round(float(np.max(cpu)), 1)
            if rss:
                out[f"{name}_rss_mb_start"] = rss[0]
                out[f"{name}_rss_mb_end"] = rss[-1]
                out[f"{name}_rss_mb_max"] = max(rss)
        for name in ("system", "other"):
            values = [r[f"{name}_cpu"] for r in rows if f"{name}_cpu" in r]
            if values:
                out[f"{name}_cpu_avg"] = round(float(np.mean(values)), 1)
                out[f"{name}_cpu_max"] = round(float(np.max(values)), 1)
        lags = [r["max_lag_ms"] for r in rows]
        out["driver_max_lag_ms"] = round(max(lags), 1) if lags else 0.0
        return out

    def result_base(self) -> dict[str, Any]:
        o = self.o
        return {
            "kind": self.kind,
            "target": o.target,
            "servers": len(self.urls),
            "urls": self.urls,
            "options": {k: v for k, v in asdict(o).items() if k not in ("hub_env",)},
            "hub_env": o.hub_env,
            "mix": asdict(o.effective_mix()),
            "population": {"pairs": self.pairs, "churners": self.churners, "idle": self.idle},
            "machine": {"cpus": cpu_count(), "python": sys.version.split()[0]},
            "setup": self.info,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def len_users(plan: WorkerPlan) -> int:
    return plan.client_count


def progress_line(row: dict[str, Any], servers: int) -> str:
    parts = [
        f"[{row['t']:4d}s]",
        f"send {row['sent']:5d}/s",
        f"ack {row['acked']:5d}/s",
        f"dlv {row['delivered']:5d}/s",
        f"| ack p50 {fmt_ms(row['ack_p50'])} p99 {fmt_ms(row['ack_p99'])}",
        f"| e2e p99 {fmt_ms(row['e2e_p99'])} ms",
        f"| err {row['errors']}",
        f"| conn {row['connections']}",
    ]
    if "server_cpu" in row:
        label = "hub" if servers == 1 else f"hubsx{servers}"
        parts.append(f"| {label} {row['server_cpu']:.0f}% {row.get('server_rss_mb', 0):.0f}MB")
    if "postgres_cpu" in row:
        parts.append(f"pg {row['postgres_cpu']:.0f}%")
    if "redis_cpu" in row:
        parts.append(f"redis {row['redis_cpu']:.0f}%")
    if "other_cpu" in row and row["other_cpu"] >= 20:
        parts.append(f"| OTHER {row['other_cpu']:.0f}%")
    if "driver_cpu" in row:
        parts.append(f"| driver {row['driver_cpu']:.0f}% lag {row['max_lag_ms']:.0f}ms")
    if row["overdue"]:
        parts.append(f"| overdue {row['overdue']}")
    return " ".join(parts)


# -- run --------------------------------------------------------------------------------


@dataclass
class Targets:
    rate: float | None = None
    p99_ms: float | None = None
    loss: int | None = None
    errors: int | None = None


def evaluate_run(session: Session, targets: Targets) -> dict[str, Any]:
    totals = session.final_totals()
    duration = session.duration_s
    ack_ms = session.ack.latencies()
    e2e_ms = session.e2e.latencies()
    sent = totals["sent"]
    result = session.result_base()
    result["duration_s"] = duration
    result["rate"] = {
        "target": session.segments[0].rate if session.segments else 0,
        "sent_per_s": round(sent / duration, 1),
        "acked_per_s": round(totals["acked"] / duration, 1),
        "delivered_per_s": round(totals["delivered"] / duration, 1),
    }
    result["totals"] = {k: v for k, v in totals.items() if k not in ("lost_seconds",)}
    result["latency_ms"] = {
        "ack": summary(ack_ms),
        "delivery": summary(e2e_ms),
        "receipt_and_typing_ack": summary(session.other_ack_values()),
        "ack_p99_counting_missing": _finite(p99_with_missing(ack_ms, sent)),
        "delivery_p99_counting_missing": _finite(p99_with_missing(e2e_ms, totals["acked"])),
    }
    result["errors"] = dict(session.errors)
    result["setup_errors"] = dict(session.setup_errors)
    result["extras"] = {
        k: v for k, v in sorted(session.counters.items()) if k not in ("sent", "acked", "delivered")
    }
    result["connections"] = {
        "clients": session.info.get("clients"),
        "at_start": session.info.get("connected_at_start"),
        "at_end": totals["connected_at_end"],
        "disconnects": session.counters.get("disconnects", 0),
    }
    result["resources"] = session.resource_summary(0.5, duration + 0.5)
    result["cpu_us_per_message"] = cpu_per_message(result["resources"], sent / duration)
    result["timeline"] = session.timeline
    checks: list[dict[str, Any]] = []
    if targets.rate is not None:
        achieved = totals["acked"] / duration
        checks.append(
            _check(
                "rate (acked/s ≥ 98% of target)",
                targets.rate,
                achieved,
                achieved >= 0.98 * targets.rate,
            )
        )
    if targets.p99_ms is not None:
        ack99 = p99_with_missing(ack_ms, sent)
        e2e99 = p99_with_missing(e2e_ms, sent)
        checks.append(_check("ack p99 ms", targets.p99_ms, _finite(ack99), ack99 <= targets.p99_ms))
        checks.append(
            _check("delivery p99 ms", targets.p99_ms, _finite(e2e99), e2e99 <= targets.p99_ms)
        )
    if targets.loss is not None:
        lost = totals["lost"] + totals["unacked"]
        checks.append(_check("lost + unacked", targets.loss, lost, lost <= targets.loss))
    if targets.errors is not None:
        count = sum(session.errors.values())
        checks.append(_check("errors", targets.errors, count, count <= targets.errors))
    result["expectations"] = checks
    result["passed"] = all(c["passed"] for c in checks)
    return result


def cpu_per_message(resources: dict[str, Any], rate: float) -> dict[str, float]:
    """CPU microseconds each process group spent per message sent: robust to a busy machine
    (CPU time is what the work costs, wall-clock latency is what the machine allowed)."""
    if rate <= 0:
        return {}
    out: dict[str, float] = {}
    for name in ("server", "postgres", "redis", "driver"):
        avg = resources.get(f"{name}_cpu_avg")
        if avg is not None:
            out[name] = round(avg / 100 * 1e6 / rate, 1)
    return out


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 2)


def _check(name: str, target: Any, actual: Any, passed: bool) -> dict[str, Any]:
    return {"name": name, "target": target, "actual": actual, "passed": bool(passed)}


def run(options: Options, targets: Targets) -> dict[str, Any]:
    with Session(options, "run") as session:
        session.setup()
        say(
            f"sending {options.rate:g} messages/s for {options.duration:g} s "
            f"(open loop, mix {options.effective_mix().name})…",
            quiet=options.quiet,
        )
        session.drive([Segment(0.0, options.rate)], options.duration)
        result = evaluate_run(session, targets)
        session.finish()
    return result


# -- step -------------------------------------------------------------------------------


@dataclass
class StepPlan:
    start: float
    step: float
    max: float
    step_seconds: int
    p99_ms: float
    grace_s: int = 3

    def rates(self) -> list[float]:
        rates, rate = [], self.start
        while rate <= self.max + 1e-9:
            rates.append(rate)
            rate += self.step
        return rates


def judge_step(
    session: Session, number: int, rate: float, plan: StepPlan, lost_seconds: list[float]
) -> dict[str, Any]:
    start, end = number * plan.step_seconds, (number + 1) * plan.step_seconds
    sent = sum(n for s, n in session.sent_by_second.items() if start <= s < end)
    ack_ms = session.ack.latencies(start, end)
    e2e_ms = session.e2e.latencies(start, end)
    ack99 = p99_with_missing(ack_ms, sent)
    e2e99 = p99_with_missing(e2e_ms, sent)
    lost = sum(1 for s in lost_seconds if start <= s < end)
    rows = [r for r in session.timeline if start < r["t"] <= end]
    send_errors = sum(
        n for r in rows for code, n in r["error_codes"].items() if code.startswith("message:send")
    )
    resources = session.resource_summary(start, end)
    reasons = []
    if sent < 0.97 * rate * plan.step_seconds:
        reasons.append(f"sent only {sent / plan.step_seconds:.0f}/s")
    if ack99 > plan.p99_ms:
        reasons.append(f"ack p99 {fmt_ms(ack99)} ms")
    if e2e99 > plan.p99_ms:
        reasons.append(f"delivery p99 {fmt_ms(e2e99)} ms")
    if lost:
        reasons.append(f"{lost} lost")
    if send_errors:
        reasons.append(f"{send_errors} send errors")
    ack = summary(ack_ms)
    e2e = summary(e2e_ms)
    return {
        "rate": rate,
        "from_s": start,
        "to_s": end,
        "sent": sent,
        "sent_per_s": round(sent / plan.step_seconds, 1),
        "acked": len(ack_ms),
        "ack_p50": ack["p50"],
        "ack_p99": _finite(ack99),
        "e2e_p50": e2e["p50"],
        "e2e_p99": _finite(e2e99),
        "lost": lost,
        "send_errors": send_errors,
        "server_cpu_avg": resources.get("server_cpu_avg"),
        "postgres_cpu_avg": resources.get("postgres_cpu_avg"),
        "driver_cpu_avg": resources.get("driver_cpu_avg"),
        "driver_max_lag_ms": resources.get("driver_max_lag_ms"),
        "other_cpu_avg": resources.get("other_cpu_avg"),
        "cpu_us_per_message": cpu_per_message(resources, sent / plan.step_seconds),
        "passed": not reasons,
        "why": ", ".join(reasons),
    }


def step(options: Options, plan: StepPlan) -> dict[str, Any]:
    rates = plan.rates()
    if not rates:
        raise ValueError("no step: --start is above --max")
    segments = [Segment(i * plan.step_seconds, r) for i, r in enumerate(rates)]
    duration = len(rates) * plan.step_seconds
    judged: dict[int, dict[str, Any]] = {}

    def on_second(session: Session, t: int) -> None:
        number = (t - plan.grace_s) // plan.step_seconds - 1
        if (
            number >= 0
            and number not in judged
            and (t - plan.grace_s) % plan.step_seconds == 0
            and number < len(rates)
        ):
            verdict = judge_step(session, number, rates[number], plan, [])
            judged[number] = verdict
            mark = "PASS" if verdict["passed"] else f"FAIL ({verdict['why']})"
            say(f"  step {rates[number]:g}/s: {mark}", quiet=options.quiet)
            if not verdict["passed"]:
                session.halt()

    with Session(options, "step") as session:
        session.setup()
        say(
            f"stepping {rates[0]:g} → {rates[-1]:g} messages/s, {plan.step_seconds} s each, "
            f"until p99 > {plan.p99_ms:g} ms or loss (mix {options.effective_mix().name})…",
            quiet=options.quiet,
        )
        session.drive(segments, duration, on_second)
        totals = session.final_totals()
        steps = []
        for number, rate in enumerate(rates):
            if number * plan.step_seconds >= _last_sent_second(session) + 1:
                break
            if (number + 1) * plan.step_seconds > session.halted_at_s:
                break  # cut short by the halt after the step before it failed
            steps.append(judge_step(session, number, rate, plan, totals["lost_seconds"]))
        session.finish()
        result = session.result_base()
        sustained = 0.0
        for verdict in steps:
            if not verdict["passed"]:
                break
            sustained = verdict["rate"]
        result["step"] = asdict(plan)
        result["steps"] = steps
        result["highest_sustained_rate"] = sustained
        result["bound_reached"] = any(not v["passed"] for v in steps)
        result["totals"] = {k: v for k, v in totals.items() if k != "lost_seconds"}
        result["errors"] = dict(session.errors)
        result["extras"] = {
            k: v
            for k, v in sorted(session.counters.items())
            if k not in ("sent", "acked", "delivered")
        }
        result["resources"] = session.resource_summary(0.5, duration + 0.5)
        result["timeline"] = session.timeline
        result["passed"] = sustained > 0
    return result


def _last_sent_second(session: Session) -> int:
    return max(session.sent_by_second) if session.sent_by_second else -1


# -- idle -------------------------------------------------------------------------------


def idle(options: Options, hold_s: float = 10.0) -> dict[str, Any]:
    with Session(options, "idle") as session:
        session.setup()
        say(f"holding the connections for {hold_s:g} s…", quiet=options.quiet)
        rss_samples: list[int] = []
        cpu_samples: list[float] = []
        end = time.monotonic() + hold_s
        session.monitor.sample(session.elapsed())
        while time.monotonic() < end:
            session.pump(1.0)
            row = session.monitor.sample(session.elapsed())
            rss_samples.append(session.monitor.rss("server"))
            if "server_cpu" in row:
                cpu_samples.append(row["server_cpu"])
        session.finish()
        before = session.info.get("server_rss_before_connect", 0)
        after = int(np.median(rss_samples)) if rss_samples else 0
        connected = session.info.get("connected_at_start", 0)
        result = session.result_base()
        result["idle"] = {
            "clients": session.info.get("clients"),
            "connected": connected,
            "connect_s": session.info.get("connect_s"),
            "connects_per_s": round(connected / max(0.1, session.info.get("connect_s", 0.1)), 1),
            "server_rss_before_mb": round(before / 2**20, 1),
            "server_rss_after_mb": round(after / 2**20, 1),
            "rss_per_connection_kib": round((after - before) / max(1, connected) / 1024, 2)
            if before and after
            else None,
            "server_cpu_idle_avg": round(float(np.mean(cpu_samples)), 1) if cpu_samples else None,
            "setup_errors": dict(session.setup_errors),
            "monitored": bool(session.monitor.groups.get("server")),
        }
        result["passed"] = connected == session.info.get("clients")
    return result
