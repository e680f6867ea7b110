"""chart.png from a result's timeline: rates, latency and CPU/RSS per second (and for the
soak, sockets per node with the kills and restarts marked).

matplotlib is imported here only, with the Agg backend: a run without ``--no-chart`` on a
machine without a display still draws.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from loadtest.model.run import RunResult
from loadtest.model.soak import SoakResult
from loadtest.model.step import StepResult
from loadtest.model.timeline import Second
from loadtest.report.lines import server_label

NAN = float("nan")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _or_nan(value: float | None) -> float:
    return NAN if value is None else value


def draw_chart(result: RunResult | StepResult, path: Path) -> None:
    plt = _pyplot()
    h = result.header
    rows = result.timeline
    t = [r.t for r in rows]
    fig, (rate_ax, lat_ax, cpu_ax) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    label = server_label(h)
    fig.suptitle(f"{h.kind} · {label} · {h.population.pairs} pairs · mix {h.mix.name}")
    rate_ax.plot(t, [r.target_rate for r in rows], "k--", lw=1, label="target")
    rate_ax.plot(t, [r.sent for r in rows], label="sent/s")
    rate_ax.plot(t, [r.acked for r in rows], label="acked/s")
    rate_ax.plot(t, [r.delivered for r in rows], label="delivered/s")
    errors = [r.errors for r in rows]
    if any(errors):
        rate_ax.bar(t, errors, color="red", alpha=0.5, label="errors/s")
    rate_ax.set_ylabel("messages / s")
    rate_ax.legend(loc="upper left", fontsize=8)
    rate_ax.grid(alpha=0.3)

    _latency(lat_ax, rows, "delivery")
    bound = result.step.p99_ms if isinstance(result, StepResult) else None
    if bound:
        lat_ax.axhline(bound, color="red", lw=0.8, ls=":", label=f"{bound:g} ms")
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency ms (by arrival second)")
    lat_ax.legend(loc="upper left", fontsize=8)
    lat_ax.grid(alpha=0.3, which="both")

    for group, name in (
        ("server", label),
        ("postgres", "postgres"),
        ("redis", "redis"),
        ("driver", "driver"),
    ):
        values = [_or_nan(r.cpu(group)) for r in rows]
        if any(not math.isnan(v) for v in values):
            cpu_ax.plot(t, values, label=name)
    cpu_ax.set_ylabel("cpu % (100 = one core)")
    cpu_ax.set_xlabel("seconds since the start")
    cpu_ax.legend(loc="upper left", fontsize=8)
    cpu_ax.grid(alpha=0.3)
    rss_ax = cpu_ax.twinx()
    rss_ax.plot(t, [_or_nan(r.rss_mb("server")) for r in rows], "k:", lw=1)
    rss_ax.set_ylabel(f"{label} rss MB (dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _latency(ax: Any, rows: list[Second], delivery: str) -> None:
    t = [r.t for r in rows]
    for values, style, name in (
        ([r.ack_p50 for r in rows], "-", "ack p50"),
        ([r.ack_p99 for r in rows], "-", "ack p99"),
        ([r.e2e_p50 for r in rows], "--", f"{delivery} p50"),
        ([r.e2e_p99 for r in rows], "--", f"{delivery} p99"),
    ):
        ax.plot(t, [_or_nan(v) for v in values], style, label=name)


def draw_soak_chart(result: SoakResult, path: Path) -> None:
    """Rates, latency, sockets per node and CPU/RSS per node; kills in red, restarts green."""
    plt = _pyplot()
    rows = result.timeline
    t = [r.t for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(12, 13), sharex=True)
    rate_ax, lat_ax, conn_ax, cpu_ax = axes
    k = result.kills
    fig.suptitle(
        f"soak · {server_label(result.header)} · {result.header.population.pairs} pairs · "
        f"{result.header.options.rate:g} msg/s · kill -9 every {k.kill_every_s:g} s "
        f"(down {k.down_for_s:g} s) · lost {result.totals.lost}"
    )
    rate_ax.plot(t, [r.target_rate for r in rows], "k--", lw=1, label="target")
    rate_ax.plot(t, [r.sent for r in rows], label="sent/s")
    rate_ax.plot(t, [r.acked for r in rows], label="acked/s")
    rate_ax.plot(t, [r.delivered for r in rows], label="delivered live/s")
    rate_ax.plot(t, [r.soak.recovered if r.soak else 0 for r in rows], label="recovered by sync/s")
    rate_ax.set_ylabel("messages / s")

    _latency(lat_ax, rows, "live delivery")
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency ms (by arrival second)")

    _sockets(conn_ax, rows, result.header.servers)
    _soak_cpu(cpu_ax, rows, result.header.servers)

    for event in k.events:
        color = {"kill": "red", "restarted": "green"}.get(event.kind, "orange")
        for ax in axes:
            ax.axvline(event.t, color=color, lw=0.8, ls="-" if color == "red" else ":")
    rate_ax.plot([], [], color="red", lw=0.8, label="kill -9")
    rate_ax.plot([], [], color="green", lw=0.8, ls=":", label="restarted")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _sockets(ax: Any, rows: list[Second], nodes: int) -> None:
    t = [r.t for r in rows]
    for number in range(nodes):
        ax.plot(
            t,
            [r.soak.conn_by_node[number] if r.soak else NAN for r in rows],
            label=f"sockets on node {number + 1}",
        )
    ax.plot(t, [r.soak.outbox if r.soak else 0 for r in rows], ":", label="outbox (unacked)")
    ax.plot(t, [r.soak.reconnects if r.soak else 0 for r in rows], ".", ms=3, label="reconnects/s")
    ax.set_ylabel("phones")


def _soak_cpu(cpu_ax: Any, rows: list[Second], nodes: int) -> None:
    t = [r.t for r in rows]
    rss_ax = cpu_ax.twinx()
    for number in range(1, nodes + 1):
        group = f"server{number}"
        cpu_ax.plot(t, [_or_nan(r.cpu(group)) for r in rows], label=f"node {number}")
        rss_ax.plot(
            t,
            [_or_nan(r.rss_mb(group)) for r in rows],
            ":",
            lw=1.2,
            label=f"node {number} rss",
        )
    for group, name in (("postgres", "postgres"), ("driver", "driver")):
        cpu_ax.plot(t, [_or_nan(r.cpu(group)) for r in rows], lw=0.8, label=name)
    cpu_ax.set_ylabel("cpu % (100 = one core)")
    rss_ax.set_ylabel("rss MB (dotted)")
    cpu_ax.set_xlabel("seconds since the start")
    rss_ax.legend(loc="upper right", fontsize=7)
