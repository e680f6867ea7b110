"""The soak's terminal table: what was lost or duplicated, the kills and restarts, the
reconnects, the hub logs, then the usual resources and checks.

Each line is explained in loadtest/README.md, "What the soak's numbers mean".
"""

from __future__ import annotations

from loadtest.model.soak import SoakResult
from loadtest.report.lines import resources_lines, server_label
from loadtest.report.text import check_line, latency_line
from loadtest.stats import fmt_ms


def render_soak(result: SoakResult) -> str:
    lines = [*_message_lines(result), *_kill_lines(result)]
    lines.append(f"  latency ms {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for name, summary in (
        ("ack", result.latency_ms.ack),
        ("live dlv", result.latency_ms.delivery_live),
    ):
        if summary.count:
            lines.append(latency_line(name, summary, ", from the due time"))
    errors = result.errors
    lines.append(
        "  errors     "
        + (", ".join(f"{c} {n}" for c, n in sorted(errors.items())) if errors else "none")
        + "   (as the phones saw them)"
    )
    log = result.hub_log
    lines.append(
        f"  hub logs   {log.errors} errors, {log.warnings} warnings, {log.tracebacks} tracebacks"
    )
    lines.extend(f"             {sample}" for sample in log.samples[:3])
    lines.extend(_rss_lines(result))
    lines.extend(resources_lines(result.header, result.resources))
    lines.extend(check_line(check) for check in result.expectations)
    lines.extend(f"    lost: {sample}" for sample in result.totals.lost_samples[:5])
    lines.extend(f"    duplicate: {sample}" for sample in result.totals.duplicate_samples[:5])
    for event in result.kills.events:
        if event.log_tail:
            lines.append(f"  {event.kind} node {event.node} at {event.t} s; log tail:")
            lines.extend("    " + line for line in event.log_tail.splitlines()[-10:])
    return "\n".join(lines)


def _message_lines(result: SoakResult) -> list[str]:
    h, t, k = result.header, result.totals, result.kills
    sent = t.sent or 1
    redelivered = ", ".join(f"{src} {n}" for src, n in sorted(t.redelivered.items())) or "0"
    return [
        "",
        f"== soak: {server_label(h)} · {result.connections.clients} clients "
        f"({h.population.pairs} pairs) · {h.options.rate:g} msg/s for "
        f"{result.duration_s:g} s · kill -9 every {k.kill_every_s:g} s, "
        f"down {k.down_for_s:g} s",
        f"  messages   sent {t.sent}  acked {t.acked} ({100 * t.acked / sent:.2f}%)"
        f"  delivered live {t.delivered_live}  recovered by sync {t.recovered_by_sync}"
        f" (+ {t.recovered_by_final_sync} by the final sync)",
        f"             LOST {t.lost}  duplicates {t.duplicates}  corrupted {t.corrupted}"
        f"  unacked {t.unacked} ({t.unacked_but_delivered} more unacked but delivered)"
        f"  failed {t.failed}",
        f"             writes {t.writes} (resent {t.resent}, {t.ack_timeouts} after an"
        f" ack timeout)  queued while offline {t.queued_offline}"
        f"  redelivered, dropped by dedupe: {redelivered}",
        f"             final sync {t.final_sync_ok} ok, {t.final_sync_failed} failed;"
        f" seq gaps {t.seq_gaps}; seen but not in the history {t.not_stored};"
        f" unexpected {t.unexpected}",
    ]


def _kill_lines(result: SoakResult) -> list[str]:
    k, r = result.kills, result.reconnects
    ready = k.restart_ready_s
    lines = [
        f"  kills      {k.kills} of {k.planned} planned ({k.skipped} skipped)"
        f" · restarts {k.restarts}"
        + (f" (healthy {min(ready):g} to {max(ready):g} s after the respawn)" if ready else "")
        + f" · failed restarts {k.restart_failures} · unexpected exits"
        f" {k.unexpected_exits} · nodes up at the end {k.nodes_up_at_end}/{k.nodes}",
        f"  reconnect  drops {r.drops}  reconnects {r.reconnects}  gave up {r.gave_up}"
        f"  · drop → connected ms p50 {fmt_ms(r.time_ms.p50)}"
        f" p99 {fmt_ms(r.time_ms.p99)} max {fmt_ms(r.time_ms.max)}",
    ]
    if r.per_kill:
        lines.append(
            "             per kill: "
            + "; ".join(f"{x.t:g} s: {x.reconnects} p99 {fmt_ms(x.p99)}" for x in r.per_kill)
        )
    refusals = r.refusals
    lines.append(
        "  refused    "
        + (", ".join(f"{c} {n}" for c, n in sorted(refusals.items())) if refusals else "none")
        + "   (failed connect attempts while reconnecting, by code)"
    )
    return lines


def _rss_lines(result: SoakResult) -> list[str]:
    """Each node's RSS maximum, and all nodes' per minute: growth shows within one node's life."""
    res = result.resources
    lines = []
    per_node = [
        f"node {n} {res.group(f'server{n}').rss_mb_max:.0f}"
        for n in range(1, result.header.servers + 1)
        if res.group(f"server{n}").rss_mb_max is not None
    ]
    if per_node:
        lines.append("  hubs rss   max MB: " + ", ".join(per_node))
    if res.server_rss_mb_by_minute:
        lines.append(
            "             all nodes, max of each minute (MB): "
            + " ".join(f"{v:.0f}" for v in res.server_rss_mb_by_minute)
        )
    return lines
