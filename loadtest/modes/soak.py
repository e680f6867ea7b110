"""``soak``: a long open-loop run while hub nodes are killed (``kill -9``) and restarted.

The session is the usual one (spawned PostgreSQL, Redis and N ≥ 2 hub nodes, worker processes
holding the phones), with the soak's phones (``phones/recovery.py``: they reconnect, resend and
sync by themselves) and a ``Killer`` polled from the session's loop in place of the check that
fails a run when a server exits. At the end the result says whether anything acknowledged was
lost or stored twice (``soak_verdict.py``).
"""

from __future__ import annotations

from loadtest.model.soak import SoakResult
from loadtest.model.timeline import Second, SoakSecond
from loadtest.modes.killer import Killer
from loadtest.modes.soak_verdict import evaluate
from loadtest.options import KillPlan, Options
from loadtest.plan import HUB, Segment, SoakPlan
from loadtest.session.collected import MergedTick
from loadtest.session.failure import RunFailed
from loadtest.session.session import DriveHooks, Session
from loadtest.stats import fmt_ms


def soak(options: Options, phones: SoakPlan, kills: KillPlan) -> SoakResult:
    check(options, kills)
    session = Session(
        options,
        "soak",
        phones=phones,
        line=soak_line,
        finish_grace_s=phones.final_sync_timeout_s + 120,
    )
    with session:
        session.setup()
        assert session.servers is not None and session.servers.fleet is not None
        killer = Killer(
            session.servers.fleet, session.monitor, session.progress, kills, options.duration
        )
        session.progress.say(
            f"soaking: {options.rate:g} messages/s for {options.duration:g} s, kill -9 of one of "
            f"{len(session.urls)} nodes every {kills.every_s:g} s, back after {kills.down_s:g} s…"
        )
        hooks = DriveHooks(watch=killer.poll, soak_columns=SoakColumns(session, killer))
        schedule = session.drive([Segment(0.0, options.rate)], options.duration, hooks)
        killer.settle(schedule, kills.restart_timeout_s * kills.restart_attempts + 10)
        if not session.replies.finals:
            raise RunFailed("no worker reported")
        result = evaluate(session, killer, phones)
        session.finish()
    return result


def check(options: Options, kills: KillPlan) -> None:
    """What a soak cannot do: ValueError, which the command reports and exits 2 on."""
    if options.target != HUB:
        raise ValueError("soak drives the hub (--target hub)")
    if options.hub_urls:
        raise ValueError("soak kills and restarts nodes, so it starts its own: drop --hub-url")
    if options.spawn_hubs < 2:
        raise ValueError("soak needs --spawn-hubs 2 or more (the phones move to a live node)")
    if not 0 < kills.down_s < kills.every_s:
        raise ValueError("need 0 < --down-for < --kill-every")


class SoakColumns:
    """The soak's own columns of each timeline second (the session's ``soak_columns`` hook)."""

    def __init__(self, session: Session, killer: Killer) -> None:
        self.session = session
        self.killer = killer

    def __call__(self, index: int, merged: MergedTick) -> SoakSecond:
        c, gauges = merged.counters, merged.gauges
        return SoakSecond(
            recovered=c.get("recovered", 0),
            recovered_final=c.get("recovered_final", 0),
            resent=c.get("resent", 0),
            reconnects=c.get("reconnects", 0),
            drops=c.get("drops", 0),
            outbox=gauges.get("outbox", 0),
            recovering=gauges.get("recovering", 0),
            conn_by_node=[gauges.get(f"conn:{url}", 0) for url in self.session.urls],
            events=[f"{e.kind} {e.node}" for e in self.killer.events if index - 1 < e.t <= index],
            nodes_up=self.killer.nodes_up(),
        )


def soak_line(row: Second) -> str:
    """The soak's per-second line: sockets per node, the outbox, reconnects, kill events."""
    assert row.soak is not None
    s, usage = row.soak, row.usage
    nodes = "/".join(str(n) for n in s.conn_by_node)
    parts = [
        f"[{row.t:4d}s]",
        f"send {row.sent:4d}/s ack {row.acked:4d}/s live {row.delivered:4d}/s",
        f"sync {s.recovered:4d}/s",
        f"| ack p99 {fmt_ms(row.ack_p99)} e2e p99 {fmt_ms(row.e2e_p99)} ms",
        f"| conn {nodes}",
        f"| outbox {s.outbox} reconn {s.reconnects} resent {s.resent}",
        f"| err {row.errors}",
    ]
    server_rss = usage.rss_mb.get("server")
    if server_rss is not None:
        parts.append(f"| hubs {usage.cpu.get('server', 0):.0f}% {server_rss:.0f}MB")
    if (usage.other_cpu or 0) >= 20:
        parts.append(f"| OTHER {usage.other_cpu:.0f}%")
    if s.events:
        parts.append("| " + ", ".join(s.events).upper())
    return " ".join(parts)
