"""What a soak's numbers add up to, and whether it passed: nothing acknowledged lost, nothing
stored twice, every killed node back, none died by itself, and something was acked at all.

Besides the workers' tallies it reads the nodes' own logs (every run of each node, since a
restart appends), because a hub that lost nothing but logged tracebacks is worth a look.
"""

from __future__ import annotations

import math
import re

import numpy as np

from loadtest.fleet import Server
from loadtest.model.common import Check
from loadtest.model.soak import (
    HubLog,
    KillReconnects,
    KillSummary,
    NodeLog,
    Reconnects,
    SoakConnections,
    SoakLatency,
    SoakRates,
    SoakResult,
    SoakTotals,
)
from loadtest.model.timeline import Resources, Second
from loadtest.modes.killer import Killer
from loadtest.pipe import SoakTally
from loadtest.plan import SoakPlan
from loadtest.session.resources import cpu_per_message
from loadtest.session.session import Session
from loadtest.stats import summary

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (CRITICAL|ERROR|WARNING) (\S+): (.*)$")


def evaluate(session: Session, killer: Killer, phones: SoakPlan) -> SoakResult:
    assert session.schedule is not None and session.setup_info is not None
    assert session.servers is not None and session.servers.fleet is not None
    duration = session.schedule.duration_s
    tally = SoakTally.merge(session.replies.soak_tallies())
    c = session.collected.counters
    sent, acked = c.get("sent", 0), c.get("acked", 0)
    kills = killer.summary()
    resources = by_minute(session.resources(0.5, duration + 0.5), session.timeline.rows, duration)
    totals = soak_totals(tally, c)
    checks = expectations(totals, kills, acked)
    return SoakResult(
        header=session.header(),
        duration_s=duration,
        rate=SoakRates(
            target=session.options.rate,
            sent_per_s=round(sent / duration, 1) if duration else 0,
            acked_per_s=round(acked / duration, 1) if duration else 0,
        ),
        totals=totals,
        kills=kills,
        reconnects=reconnects(tally, c, [e.t for e in kills.events if e.kind == "kill"]),
        latency_ms=SoakLatency(
            ack=summary(session.collected.ack.latencies()),
            delivery_live=summary(session.collected.e2e.latencies()),
        ),
        errors=dict(session.collected.errors),
        setup_errors=dict(session.replies.setup_errors),
        hub_log=hub_log_summary(session.servers.fleet.servers),
        connections=SoakConnections(
            clients=session.setup_info.clients,
            at_start=session.setup_info.connected_at_start,
            at_end=session.replies.connected_at_end(),
        ),
        resources=resources,
        cpu_us_per_message=cpu_per_message(resources, sent / duration),
        machine_busy=(resources.cpu_avg("other") or 0) >= 20,
        soak=phones,
        timeline=session.timeline.rows,
        expectations=checks,
        passed=all(check.passed for check in checks),
    )


def soak_totals(tally: SoakTally, c: dict[str, int]) -> SoakTotals:
    return SoakTotals(
        sent=c.get("sent", 0),
        writes=c.get("writes", 0),
        resent=c.get("resent", 0),
        queued_offline=c.get("queued_offline", 0),
        ack_timeouts=c.get("ack_timeouts", 0),
        acked=c.get("acked", 0),
        delivered_live=c.get("delivered", 0),
        recovered_by_sync=c.get("recovered", 0),
        recovered_by_final_sync=c.get("recovered_final", 0),
        lost=tally.lost,
        duplicates=tally.duplicates,
        redelivered=tally.redelivered,
        unacked=tally.unacked,
        unacked_never_written=tally.unacked_never_written,
        unacked_but_delivered=tally.unacked_but_delivered,
        failed=tally.failed,
        failed_codes=tally.failed_codes,
        corrupted=tally.corrupted,
        unexpected=tally.unexpected,
        seq_gaps=tally.seq_gaps,
        not_stored=tally.not_stored,
        final_sync_ok=tally.final_sync_ok,
        final_sync_failed=tally.final_sync_failed,
        lost_samples=tally.lost_samples[:20],
        duplicate_samples=tally.duplicate_samples[:20],
    )


def expectations(totals: SoakTotals, kills: KillSummary, acked: int) -> list[Check]:
    return [
        Check("lost (acked, never seen)", 0, totals.lost, totals.lost == 0),
        Check("duplicates", 0, totals.duplicates, totals.duplicates == 0),
        Check(
            "nodes restarted",
            kills.kills,
            kills.restarts,
            kills.restart_failures == 0 and kills.nodes_up_at_end == kills.nodes,
        ),
        Check("unexpected node exits", 0, kills.unexpected_exits, not kills.unexpected_exits),
        Check("acked", "> 0", acked, acked > 0),
    ]


def reconnects(tally: SoakTally, c: dict[str, int], kill_times: list[float]) -> Reconnects:
    """Drop → connected times overall, and per kill (the reconnects until the next kill)."""
    times = tally.reconnect_times
    per_kill = []
    for number, at in enumerate(kill_times):
        until = kill_times[number + 1] if number + 1 < len(kill_times) else math.inf
        these = summary(np.array([t[1] for t in times if at - 0.5 <= t[0] < until], dtype=float))
        per_kill.append(KillReconnects(at, these.count, these.p50, these.p99, these.max))
    return Reconnects(
        drops=c.get("drops", 0),
        reconnects=c.get("reconnects", 0),
        gave_up=tally.reconnect_gave_up,
        time_ms=summary(np.array([t[1] for t in times], dtype=float)),
        per_kill=per_kill,
        refusals=tally.refusals,
    )


def by_minute(resources: Resources, timeline: list[Second], duration: float) -> Resources:
    """All hub nodes' RSS, the maximum of each minute: a restarted node starts small again,
    so growth shows within one node's life."""
    peaks: dict[int, float] = {}
    for row in timeline:
        rss = row.rss_mb("server")
        if rss is not None and row.t <= duration:
            minute = (row.t - 1) // 60
            peaks[minute] = max(peaks.get(minute, 0.0), rss)
    return Resources(
        groups=resources.groups,
        driver_max_lag_ms=resources.driver_max_lag_ms,
        server_rss_mb_by_minute=[peaks[m] for m in sorted(peaks)],
    )


def hub_log_summary(servers: list[Server]) -> HubLog:
    """WARNING/ERROR/CRITICAL lines in each node's log (every run of it), and a few samples."""
    by_node: list[NodeLog] = []
    samples: list[str] = []
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
            key = "warnings" if match.group(1) == "WARNING" else "errors"
            counts[key] += 1
            if key == "errors" and len(samples) < 10:
                samples.append(f"{server.name}: {match.group(2)}: {match.group(3)[:200]}")
        by_node.append(NodeLog(server.name, **counts))
    return HubLog(
        errors=sum(n.errors for n in by_node),
        warnings=sum(n.warnings for n in by_node),
        tracebacks=sum(n.tracebacks for n in by_node),
        by_node=by_node,
        samples=samples,
    )
