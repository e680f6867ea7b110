"""``python -m loadtest soak``: a long open-loop run while hub nodes are killed and restarted.

The parent runs the usual session (spawned PostgreSQL, Redis and N ≥ 2 hub nodes, worker
processes holding the phones) and, from its main loop, a ``Killer``: every ``kill_every``
seconds it ``kill -9``s the next node (round robin) and starts it again ``down_for`` seconds
later on the same port with the same environment. The phones (``phones/recovery.py``) reconnect,
resend and sync by themselves; at the end the result says whether anything acknowledged was
lost or stored twice.

Everything the Killer does is non-blocking (a kill waits for the reaped pid, a restart is a
``Popen`` and short health probes), so the workers' ticks keep flowing while nodes come and go.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from loadtest.fleet import Server
from loadtest.pipe import SoakTally
from loadtest.plan import HUB, Segment, SoakPlan
from loadtest.runner import (
    NS,
    Options,
    RunFailed,
    Session,
    _check,
    cpu_per_message,
    say,
)
from loadtest.stats import fmt_ms, summary

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (CRITICAL|ERROR|WARNING) (\S+): (.*)$")


@dataclass
class KillPlan:
    every_s: float = 60.0
    down_s: float = 10.0
    restart_timeout_s: float = 90.0
    restart_attempts: int = 3


@dataclass
class Node:
    number: int
    server: Server
    status: str = "up"  # up | down | starting | failed
    restart_at_ns: int = 0
    ready_by_ns: int = 0
    next_probe_ns: int = 0
    attempts: int = 0
    down_since_ns: int = 0
    pids: list[int] = field(default_factory=list)


class Killer:
    """Kills and restarts hub nodes on schedule; ``poll()`` is called every ≤ 0.2 s."""

    def __init__(self, session: SoakSession, plan: KillPlan, duration_s: float) -> None:
        assert session.fleet is not None
        self.session = session
        self.fleet = session.fleet
        self.plan = plan
        self.duration_s = duration_s
        self.nodes = [
            Node(number, server, pids=[server.process.pid])
            for number, server in enumerate(self.fleet.servers, 1)
        ]
        self.events: list[dict[str, Any]] = []
        self.kills = 0
        self.next_kill = 1

    def t(self, now_ns: int) -> float:
        return round((now_ns - self.session.started_ns) / NS, 2)

    def event(self, now_ns: int, kind: str, node: Node, **extra: Any) -> None:
        entry = {"t": self.t(now_ns), "kind": kind, "node": node.number, **extra}
        self.events.append(entry)
        text = ", ".join(f"{k} {v}" for k, v in extra.items() if k != "log_tail")
        say(
            f"  ** {kind} node {node.number} at {entry['t']:.1f} s"
            + (f" ({text})" if text else ""),
            quiet=self.session.o.quiet,
        )

    def poll(self) -> None:
        if not self.session.started_ns:
            return
        now = time.monotonic_ns()
        for node in self.nodes:
            self.step_node(node, now)
        due = self.session.started_ns + int(self.next_kill * self.plan.every_s * NS)
        if now >= due and self.t(due) < self.duration_s:
            self.next_kill += 1
            victim = self.nodes[self.kills % len(self.nodes)]
            if all(n.status == "up" for n in self.nodes):
                self.kill(victim, now)
            else:
                down = [n.number for n in self.nodes if n.status != "up"]
                self.event(now, "kill_skipped", victim, reason=f"nodes {down} not up")

    def kill(self, node: Node, now: int) -> None:
        pid = self.fleet.kill(node.server)
        self.kills += 1
        node.status = "down"
        node.down_since_ns = now
        node.restart_at_ns = now + int(self.plan.down_s * NS)
        node.attempts = 0
        self.event(now, "kill", node, pid=pid)

    def step_node(self, node: Node, now: int) -> None:
        server = node.server
        if node.status == "up" and server.process.poll() is not None:
            # nobody killed it: a crash; restart it like a killed node, and fail the soak
            node.status = "down"
            node.down_since_ns = now
            node.restart_at_ns = now + int(self.plan.down_s * NS)
            node.attempts = 0
            self.event(
                now,
                "unexpected_exit",
                node,
                code=server.process.returncode,
                log_tail=server.log_tail(20),
            )
        elif node.status == "down" and now >= node.restart_at_ns:
            pid = self.fleet.respawn(server)
            node.pids.append(pid)
            node.attempts += 1
            node.status = "starting"
            node.ready_by_ns = now + int(self.plan.restart_timeout_s * NS)
            node.next_probe_ns = now + int(0.2 * NS)
            self.session.replace_pid(node.number, pid)
        elif node.status == "starting":
            exited = server.process.poll() is not None
            if not exited and now >= node.next_probe_ns:
                node.next_probe_ns = now + int(0.25 * NS)
                if self.fleet.answers(server, 0.5):
                    node.status = "up"
                    self.event(
                        now,
                        "restarted",
                        node,
                        pid=server.process.pid,
                        down_s=round((now - node.down_since_ns) / NS, 1),
                        ready_s=round((now - node.restart_at_ns) / NS, 1),
                    )
                    return
            if exited or now > node.ready_by_ns:
                if not exited:
                    self.fleet.kill(server)
                tail = server.log_tail(20)
                if node.attempts < self.plan.restart_attempts:
                    node.status = "down"
                    node.restart_at_ns = now + NS
                    self.event(now, "restart_retry", node, attempt=node.attempts, log_tail=tail)
                else:
                    node.status = "failed"
                    self.event(now, "restart_failed", node, log_tail=tail)

    def settle(self, timeout_s: float) -> None:
        """Wait (bounded) until no node is down or starting."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if all(n.status in ("up", "failed") for n in self.nodes):
                return
            time.sleep(0.2)

    def summary(self) -> dict[str, Any]:
        kinds = [e["kind"] for e in self.events]
        restarts = [e for e in self.events if e["kind"] == "restarted"]
        return {
            "kill_every_s": self.plan.every_s,
            "down_for_s": self.plan.down_s,
            "planned": max(0, math.ceil(self.duration_s / self.plan.every_s) - 1),
            "kills": kinds.count("kill"),
            "skipped": kinds.count("kill_skipped"),
            "restarts": len(restarts),
            "restart_ready_s": [e["ready_s"] for e in restarts],
            "restart_retries": kinds.count("restart_retry"),
            "restart_failures": kinds.count("restart_failed"),
            "unexpected_exits": kinds.count("unexpected_exit"),
            "nodes_up_at_end": sum(1 for n in self.nodes if n.status == "up"),
            "nodes": len(self.nodes),
            "events": self.events,
        }


class SoakSession(Session):
    def __init__(self, options: Options, phones: SoakPlan, kills: KillPlan) -> None:
        super().__init__(options, "soak")
        self.phones = phones
        self.kills = kills
        self.killer: Killer | None = None
        self.finish_grace_s = phones.final_sync_timeout_s + 120

    def build_plans(self) -> None:
        super().build_plans()
        self.plans = [replace(plan, soak=self.phones) for plan in self.plans]

    def check_servers(self) -> None:
        if self.killer is None:
            super().check_servers()
        else:
            self.killer.poll()

    def replace_pid(self, number: int, pid: int) -> None:
        """A restarted node: monitor its new process under the same names."""
        assert self.fleet is not None
        group = self.monitor.groups.get("server")
        if group is not None:
            group.pids = [s.process.pid for s in self.fleet.servers]
        node_group = self.monitor.groups.get(f"server{number}")
        if node_group is not None:
            node_group.pids = [pid]

    def build_row(self, index: int, merged: dict[str, Any]) -> dict[str, Any]:
        row = super().build_row(index, merged)
        c = merged["counters"]
        gauges = merged["gauges"]
        for key in ("recovered", "recovered_final", "resent", "reconnects", "drops"):
            row[key] = c.get(key, 0)
        row["outbox"] = gauges.get("outbox", 0)
        row["recovering"] = gauges.get("recovering", 0)
        row["conn_by_node"] = [gauges.get(f"conn:{url}", 0) for url in self.urls]
        if self.killer is not None:
            row["events"] = [
                f"{e['kind']} {e['node']}"
                for e in self.killer.events
                if index - 1 < e["t"] <= index
            ]
            row["nodes_up"] = sum(1 for n in self.killer.nodes if n.status == "up")
        return row

    def progress_text(self, row: dict[str, Any]) -> str:
        nodes = "/".join(str(n) for n in row["conn_by_node"])
        parts = [
            f"[{row['t']:4d}s]",
            f"send {row['sent']:4d}/s ack {row['acked']:4d}/s live {row['delivered']:4d}/s",
            f"sync {row['recovered']:4d}/s",
            f"| ack p99 {fmt_ms(row['ack_p99'])} e2e p99 {fmt_ms(row['e2e_p99'])} ms",
            f"| conn {nodes}",
            f"| outbox {row['outbox']} reconn {row['reconnects']} resent {row['resent']}",
            f"| err {row['errors']}",
        ]
        if "server_rss_mb" in row:
            parts.append(f"| hubs {row.get('server_cpu', 0):.0f}% {row['server_rss_mb']:.0f}MB")
        if row.get("other_cpu", 0) >= 20:
            parts.append(f"| OTHER {row['other_cpu']:.0f}%")
        if row.get("events"):
            parts.append("| " + ", ".join(row["events"]).upper())
        return " ".join(parts)


def hub_log_summary(servers: list[Server]) -> dict[str, Any]:
    """WARNING/ERROR/CRITICAL lines in each node's log (every run of it), and a few samples."""
    out: dict[str, Any] = {
        "errors": 0,
        "warnings": 0,
        "tracebacks": 0,
        "by_node": [],
        "samples": [],
    }
    for server in servers:
        counts = {"errors": 0, "warnings": 0, "tracebacks": 0}
        try:
            lines = server.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            if line.startswith("Traceback"):
                counts["tracebacks"] += 1
            match = LOG_LINE.match(line)
            if match is None:
                continue
            level = match.group(1)
            key = "warnings" if level == "WARNING" else "errors"
            counts[key] += 1
            if key == "errors" and len(out["samples"]) < 10:
                out["samples"].append(f"{server.name}: {match.group(2)}: {match.group(3)[:200]}")
        for key, value in counts.items():
            out[key] += value
        out["by_node"].append({"node": server.name, **counts})
    return out


def reconnect_stats(times: list[tuple[float, float]], kill_times: list[float]) -> dict[str, Any]:
    ms = np.array([t[1] for t in times], dtype=float)
    overall = summary(ms)
    per_kill = []
    for number, at in enumerate(kill_times):
        until = kill_times[number + 1] if number + 1 < len(kill_times) else math.inf
        these = np.array([t[1] for t in times if at - 0.5 <= t[0] < until], dtype=float)
        s = summary(these)
        per_kill.append(
            {"t": at, "reconnects": s["count"], "p50": s["p50"], "p99": s["p99"], "max": s["max"]}
        )
    return {"time_ms": overall, "per_kill": per_kill}


def evaluate(session: SoakSession) -> dict[str, Any]:
    assert session.killer is not None and session.fleet is not None
    o = session.o
    killer = session.killer
    duration = session.duration_s
    tallies = [f.tally for f in session.finals.values() if isinstance(f.tally, SoakTally)]
    final = SoakTally.merge(tallies)
    c = session.counters
    sent = c.get("sent", 0)
    acked = c.get("acked", 0)
    kills = killer.summary()
    kill_times = [e["t"] for e in kills["events"] if e["kind"] == "kill"]
    result = session.result_base()
    result["duration_s"] = duration
    result["rate"] = {
        "target": o.rate,
        "sent_per_s": round(sent / duration, 1) if duration else 0,
        "acked_per_s": round(acked / duration, 1) if duration else 0,
    }
    totals = {
        "sent": sent,
        "writes": c.get("writes", 0),
        "resent": c.get("resent", 0),
        "queued_offline": c.get("queued_offline", 0),
        "ack_timeouts": c.get("ack_timeouts", 0),
        "acked": acked,
        "delivered_live": c.get("delivered", 0),
        "recovered_by_sync": c.get("recovered", 0),
        "recovered_by_final_sync": c.get("recovered_final", 0),
        "lost": final.lost,
        "duplicates": final.duplicates,
        "redelivered": final.redelivered,
        "unacked": final.unacked,
        "unacked_never_written": final.unacked_never_written,
        "unacked_but_delivered": final.unacked_but_delivered,
        "failed": final.failed,
        "failed_codes": final.failed_codes,
        "corrupted": final.corrupted,
        "unexpected": final.unexpected,
        "seq_gaps": final.seq_gaps,
        "not_stored": final.not_stored,
        "final_sync_ok": final.final_sync_ok,
        "final_sync_failed": final.final_sync_failed,
        "lost_samples": final.lost_samples[:20],
        "duplicate_samples": final.duplicate_samples[:20],
    }
    result["totals"] = totals
    result["kills"] = kills
    reconnects = reconnect_stats(final.reconnect_times, kill_times)
    result["reconnects"] = {
        "drops": c.get("drops", 0),
        "reconnects": c.get("reconnects", 0),
        "gave_up": final.reconnect_gave_up,
        **reconnects,
        "refusals": final.refusals,
    }
    result["latency_ms"] = {
        "ack": summary(session.ack.latencies()),
        "delivery_live": summary(session.e2e.latencies()),
    }
    result["errors"] = dict(session.errors)
    result["setup_errors"] = dict(session.setup_errors)
    result["hub_log"] = hub_log_summary(session.fleet.servers)
    result["connections"] = {
        "clients": session.info.get("clients"),
        "at_start": session.info.get("connected_at_start"),
        "at_end": sum(f.connected for f in session.finals.values()),
    }
    result["resources"] = session.resource_summary(0.5, duration + 0.5)
    by_minute: dict[int, float] = {}
    for row in session.timeline:
        if "server_rss_mb" in row and row["t"] <= duration:
            minute = (row["t"] - 1) // 60
            by_minute[minute] = max(by_minute.get(minute, 0.0), row["server_rss_mb"])
    result["resources"]["server_rss_mb_by_minute"] = [by_minute[m] for m in sorted(by_minute)]
    result["cpu_us_per_message"] = cpu_per_message(result["resources"], sent / duration)
    result["machine_busy"] = result["resources"].get("other_cpu_avg", 0) >= 20
    result["soak"] = asdict(session.phones)
    result["timeline"] = session.timeline
    checks = [
        _check("lost (acked, never seen)", 0, totals["lost"], totals["lost"] == 0),
        _check("duplicates", 0, totals["duplicates"], totals["duplicates"] == 0),
        _check(
            "nodes restarted",
            kills["kills"],
            kills["restarts"],
            kills["restart_failures"] == 0 and kills["nodes_up_at_end"] == kills["nodes"],
        ),
        _check(
            "unexpected node exits", 0, kills["unexpected_exits"], not kills["unexpected_exits"]
        ),
        _check("acked", "> 0", acked, acked > 0),
    ]
    result["expectations"] = checks
    result["passed"] = all(check["passed"] for check in checks)
    return result


def soak(options: Options, phones: SoakPlan, kills: KillPlan) -> dict[str, Any]:
    if options.target != HUB:
        raise ValueError("soak drives the hub (--target hub)")
    if options.hub_urls:
        raise ValueError("soak kills and restarts nodes, so it starts its own: drop --hub-url")
    if options.spawn_hubs < 2:
        raise ValueError("soak needs --spawn-hubs 2 or more (the phones move to a live node)")
    if not 0 < kills.down_s < kills.every_s:
        raise ValueError("need 0 < --down-for < --kill-every")
    session = SoakSession(options, phones, kills)
    with session:
        session.setup()
        session.killer = Killer(session, kills, options.duration)
        say(
            f"soaking: {options.rate:g} messages/s for {options.duration:g} s, kill -9 of one of "
            f"{len(session.urls)} nodes every {kills.every_s:g} s, back after {kills.down_s:g} s…",
            quiet=options.quiet,
        )
        session.drive([Segment(0.0, options.rate)], options.duration)
        session.killer.settle(kills.restart_timeout_s * kills.restart_attempts + 10)
        if not session.finals:
            raise RunFailed("no worker reported")
        result = evaluate(session)
        session.finish()
    return result
