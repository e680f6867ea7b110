"""The terminal tables of ``run``, ``step``, ``idle`` and ``compare`` (the soak's: soak_text.py).

The wording is what loadtest/README.md explains line by line; keep them together.
"""

from __future__ import annotations

import math

from loadtest.model.common import Check, Latency
from loadtest.model.compare import Comparison
from loadtest.model.idle import IdleResult
from loadtest.model.push import PushResult
from loadtest.model.run import RunResult
from loadtest.model.step import StepResult, StepVerdict
from loadtest.report.lines import pct, resources_lines, server_label, us
from loadtest.stats import fmt_ms


def latency_line(name: str, s: Latency, note: str) -> str:
    return (
        f"  {name:<11}{fmt_ms(s.p50):>8} {fmt_ms(s.p90):>8} {fmt_ms(s.p99):>8}"
        f" {fmt_ms(s.max):>8}   ({s.count} samples{note})"
    )


def check_line(check: Check, missing: str | None = None) -> str:
    """PASS/FAIL of one expectation; ``missing`` is shown for an actual of None (∞)."""
    mark = "PASS" if check.passed else "FAIL"
    actual = missing if check.actual is None and missing is not None else check.actual
    return f"  {mark}  {check.name}: target {check.target}, got {actual}"


def render_run(result: RunResult) -> str:
    h, t, rate, lat = result.header, result.totals, result.rate, result.latency_ms
    sent = t.sent or 1
    lines = [
        "",
        f"== run: {server_label(h)} · {result.connections.clients} clients "
        f"({h.population.pairs} pairs) · mix {h.mix.name} · "
        f"{result.duration_s:g} s · target {rate.target:g} msg/s",
        f"  messages   sent {t.sent}  acked {t.acked} ({100 * t.acked / sent:.2f}%)"
        f"  delivered {t.delivered}  lost {t.lost}  duplicated {t.duplicated}"
        f"  corrupted {t.corrupted}  unacked {t.unacked}  failed {t.ack_failed}"
        + (f"  to offline phones {t.offline_acked}" if t.offline_acked else ""),
        f"             undeliverable {t.undeliverable} (recipient disconnected)"
        f"  unacked after sender disconnect {t.unacked_sender_disconnected}"
        f"  unexpected {t.unexpected}",
        f"  rate/s     sent {rate.sent_per_s:g}  acked {rate.acked_per_s:g}"
        f"  delivered {rate.delivered_per_s:g}",
        f"  latency ms {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}",
    ]
    for name, summary in (
        ("ack", lat.ack),
        ("delivery", lat.delivery),
        ("rcpt/typing", lat.receipt_and_typing_ack),
    ):
        if summary.count:
            lines.append(latency_line(name, summary, ""))
    errors = result.errors
    lines.append(
        "  errors     "
        + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) if errors else "none")
    )
    c = result.connections
    lines.append(
        f"  sockets    {c.at_start}/{c.clients} at start, {c.at_end} at end,"
        f" {c.disconnects} unexpected disconnects"
    )
    extras = {k: v for k, v in result.extras.items() if k not in ("disconnects",)}
    if extras:
        lines.append("  also       " + ", ".join(f"{k} {v}" for k, v in extras.items()))
    if result.push is not None:
        lines.extend(push_lines(result.push))
    lines.extend(resources_lines(h, result.resources))
    per = result.cpu_us_per_message
    if per:
        lines.append(
            "  cpu/msg    "
            + ", ".join(f"{k} {v:g} µs" for k, v in per.items())
            + "   (CPU time per message sent: holds on a busy machine)"
        )
    lines.extend(check_line(check, "∞ (missing samples)") for check in result.expectations)
    if t.lost_samples:
        lines.append("  first lost messages:")
        lines.extend(f"    {sample}" for sample in t.lost_samples[:5])
    return "\n".join(lines)


def push_lines(p: PushResult) -> list[str]:
    """The push mix: what the offline phones were owed and what reached the fake FCM."""
    q, lat = p.queue_depth, p.latency_ms
    others = ", ".join(f"{k} {v}" for k, v in sorted(p.other_pushes.items())) or "none"
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(p.hub_outcomes.items())) or "-"
    return [
        f"  push       {p.offline_recipients} recipients offline with an FCM token;"
        f" {p.offline_messages} messages acked to them",
        f"             message pushes {p.message_pushes} ({p.pushes_per_s:g}/s during the"
        f" schedule, peak {p.peak_per_s}/s; {p.messages_per_push:g} messages per push,"
        f" coalesced); other pushes {others}",
        f"             commit → provider ms p50 {fmt_ms(lat.p50)} p90 {fmt_ms(lat.p90)}"
        f" p99 {fmt_ms(lat.p99)} max {fmt_ms(lat.max)} ({lat.count} pushes;"
        f" {p.unmatched} unmatched)",
        f"             queue depth max {q.max if q.max is not None else '-'}"
        f" mean {q.mean if q.mean is not None else '-'};"
        f" hub outcomes {outcomes}; last message never pushed in"
        f" {p.last_not_pushed}/{p.conversations} conversations",
    ]


def step_row(s: StepVerdict) -> str:
    return (
        f"  {s.rate:>6g} {s.sent_per_s:>8g} {fmt_ms(s.ack_p50):>8}"
        f" {fmt_ms(s.ack_p99 if s.ack_p99 is not None else math.inf):>8}"
        f" {fmt_ms(s.e2e_p50):>8}"
        f" {fmt_ms(s.e2e_p99 if s.e2e_p99 is not None else math.inf):>8}"
        f" {s.lost:>5} {s.send_errors:>6}"
        f" {pct(s.server_cpu_avg):>7} {pct(s.postgres_cpu_avg):>5}"
        f" {pct(s.driver_cpu_avg):>7} {fmt_ms(s.driver_max_lag_ms):>7}"
        f" {pct(s.other_cpu_avg):>7}"
        f" {us(s.cpu_us_per_message.get('server')):>7}  "
        + ("PASS" if s.passed else f"FAIL: {s.why}")
    )


def render_step(result: StepResult) -> str:
    h, plan = result.header, result.step
    clients = h.population.pairs * 2 + h.population.churners
    lines = [
        "",
        f"== step: {server_label(h)} · {clients} clients · mix {h.mix.name}"
        f" · {plan.step_seconds} s steps · bound p99 ≤ {plan.p99_ms:g} ms",
        f"  {'rate':>6} {'sent/s':>8} {'ack p50':>8} {'ack p99':>8} {'e2e p50':>8} {'e2e p99':>8}"
        f" {'lost':>5} {'errors':>6} {'server':>7} {'pg':>5} {'driver':>7} {'lag ms':>7}"
        f" {'others':>7} {'µs/msg':>7}  verdict",
    ]
    lines.extend(step_row(s) for s in result.steps)
    t = result.totals
    lines.append(
        f"  totals: sent {t.sent} acked {t.acked} delivered {t.delivered} lost {t.lost}"
        f" duplicated {t.duplicated} unacked {t.unacked}"
        + (f"; errors {result.errors}" if result.errors else "")
    )
    lines.append(
        f"  highest sustained rate: {result.highest_sustained_rate:g} msg/s"
        f" (p99 ≤ {plan.p99_ms:g} ms, no loss, no send errors)"
        + ("" if result.bound_reached else "; never failed: raise --max to find the limit")
    )
    return "\n".join(lines)


def render_idle(result: IdleResult) -> str:
    i = result.idle
    lines = [
        "",
        f"== idle: {server_label(result.header)} · {i.connected}/{i.clients} connections"
        f" opened in {i.connect_s} s ({i.connects_per_s}/s)",
    ]
    if i.monitored:
        lines += [
            f"  server rss before {i.server_rss_before_mb} MB, with connections"
            f" {i.server_rss_after_mb} MB",
            f"  rss per connection: {i.rss_per_connection_kib} KiB",
            f"  server cpu while idle: {i.server_cpu_idle_avg}%",
        ]
    else:
        lines.append("  (no server pid to measure: pass --hub-pid for an external hub)")
    if i.setup_errors:
        lines.append(f"  errors: {i.setup_errors}")
    return "\n".join(lines)


def render_compare(comparison: Comparison) -> str:
    """The rows, then the hub's ratios to each peer (rate, and delivery p99)."""
    lines = ["", f"== compare ({comparison.mode})"]
    lines.append(
        f"  {'target':<14} {'rate msg/s':>11} {'ack p99':>9} {'e2e p99':>9} {'lost':>6}"
        f" {'server cpu':>11}"
    )
    for r in comparison.rows:
        lines.append(
            f"  {r.target:<14} {r.rate:>11g} {fmt_ms(r.ack_p99):>9}"
            f" {fmt_ms(r.e2e_p99):>9} {r.lost:>6} {pct(r.server_cpu):>11}"
        )
    hub = comparison.hub()
    if hub is not None:
        for r in comparison.rows:
            if r is hub:
                continue
            rate_ratio = hub.rate / r.rate if r.rate else float("nan")
            p99_ratio = (
                hub.e2e_p99 / r.e2e_p99 if hub.e2e_p99 is not None and r.e2e_p99 else float("nan")
            )
            lines.append(
                f"  hub vs {r.target:<12}: rate x {rate_ratio:.2f}, delivery p99 x {p99_ratio:.2f}"
            )
    return "\n".join(lines)
