"""The result as a terminal table, a JSON file and a PNG chart."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from loadtest.stats import fmt_ms

RESULTS = Path(__file__).resolve().parent / "results"


def default_out(kind: str, target: str) -> Path:
    return RESULTS / f"{kind}-{target}-{time.strftime('%Y%m%d-%H%M%S')}"


def _server_label(result: dict[str, Any]) -> str:
    target = result["target"]
    if target == "hub":
        return "hub" if result.get("servers", 1) == 1 else f"hubs (x{result['servers']})"
    return str(target)


def _resources_lines(result: dict[str, Any]) -> list[str]:
    r = result.get("resources", {})
    lines = []
    label = _server_label(result)
    if "server_cpu_avg" in r:
        lines.append(
            f"  {label:<10} cpu avg {r['server_cpu_avg']:.0f}% max {r['server_cpu_max']:.0f}%"
            f"   rss {r.get('server_rss_mb_start', 0):.0f} → {r.get('server_rss_mb_end', 0):.0f} MB"
            f" (max {r.get('server_rss_mb_max', 0):.0f})"
        )
    for number in range(1, 9):
        key = f"server{number}_cpu_avg"
        if key in r:
            lines.append(
                f"    node {number}   cpu avg {r[key]:.0f}% max {r[f'server{number}_cpu_max']:.0f}%"
                f"   rss {r.get(f'server{number}_rss_mb_end', 0):.0f} MB"
            )
    for name in ("postgres", "redis"):
        if f"{name}_cpu_avg" in r:
            lines.append(
                f"  {name:<10} cpu avg {r[f'{name}_cpu_avg']:.0f}% max {r[f'{name}_cpu_max']:.0f}%"
            )
    if "driver_cpu_avg" in r:
        lines.append(
            f"  {'driver':<10} cpu avg {r['driver_cpu_avg']:.0f}% max {r['driver_cpu_max']:.0f}%"
            f"   max schedule lag {r.get('driver_max_lag_ms', 0):.0f} ms"
            f"   ({result['options']['workers']} workers, {result['options']['client_kind']}"
            f" client, {result['machine']['cpus']} cpus: 100% = one core)"
        )
    if "other_cpu_avg" in r:
        busy = r["other_cpu_avg"] >= 20
        lines.append(
            f"  {'others':<10} cpu avg {r['other_cpu_avg']:.0f}% max {r['other_cpu_max']:.0f}%"
            f"   (other processes on this machine; machine busy avg {r['system_cpu_avg']:.0f}%"
            f" of {100 * result['machine']['cpus']}%)"
            + ("  ⚠ the machine was not quiet: numbers are pessimistic" if busy else "")
        )
    return lines


def render_run(result: dict[str, Any]) -> str:
    t = result["totals"]
    rate = result["rate"]
    lat = result["latency_ms"]
    o = result["options"]
    sent = t["sent"] or 1
    lines = [
        "",
        f"== run: {_server_label(result)} · {result['connections']['clients']} clients "
        f"({result['population']['pairs']} pairs) · mix {result['mix']['name']} · "
        f"{result['duration_s']:g} s · target {rate['target']:g} msg/s",
        f"  messages   sent {t['sent']}  acked {t['acked']} ({100 * t['acked'] / sent:.2f}%)"
        f"  delivered {t['delivered']}  lost {t['lost']}  duplicated {t['duplicated']}"
        f"  corrupted {t['corrupted']}  unacked {t['unacked']}  failed {t['ack_failed']}",
        f"             undeliverable {t['undeliverable']} (recipient disconnected)"
        f"  unacked after sender disconnect {t['unacked_sender_disconnected']}"
        f"  unexpected {t['unexpected']}",
        f"  rate/s     sent {rate['sent_per_s']:g}  acked {rate['acked_per_s']:g}"
        f"  delivered {rate['delivered_per_s']:g}",
        f"  latency ms {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}",
    ]
    for name, key in (
        ("ack", "ack"),
        ("delivery", "delivery"),
        ("rcpt/typing", "receipt_and_typing_ack"),
    ):
        s = lat[key]
        if s["count"]:
            lines.append(
                f"  {name:<11}{fmt_ms(s['p50']):>8} {fmt_ms(s['p90']):>8} {fmt_ms(s['p99']):>8}"
                f" {fmt_ms(s['max']):>8}   ({s['count']} samples)"
            )
    errors = result["errors"]
    lines.append(
        "  errors     "
        + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) if errors else "none")
    )
    c = result["connections"]
    lines.append(
        f"  sockets    {c['at_start']}/{c['clients']} at start, {c['at_end']} at end,"
        f" {c['disconnects']} unexpected disconnects"
    )
    extras = {k: v for k, v in result["extras"].items() if k not in ("disconnects",)}
    if extras:
        lines.append("  also       " + ", ".join(f"{k} {v}" for k, v in extras.items()))
    lines.extend(_resources_lines(result))
    per = result.get("cpu_us_per_message") or {}
    if per:
        lines.append(
            "  cpu/msg    "
            + ", ".join(f"{k} {v:g} µs" for k, v in per.items())
            + "   (CPU time per message sent: holds on a busy machine)"
        )
    for check in result.get("expectations", []):
        mark = "PASS" if check["passed"] else "FAIL"
        actual = check["actual"]
        shown = "∞ (missing samples)" if actual is None else actual
        lines.append(f"  {mark}  {check['name']}: target {check['target']}, got {shown}")
    if t.get("lost_samples"):
        lines.append("  first lost messages:")
        for sample in t["lost_samples"][:5]:
            lines.append(f"    {sample}")
    _ = o
    return "\n".join(lines)


def render_step(result: dict[str, Any]) -> str:
    plan = result["step"]
    population = result["population"]
    clients = population["pairs"] * 2 + population["churners"]
    lines = [
        "",
        f"== step: {_server_label(result)} · {clients} clients · mix {result['mix']['name']}"
        f" · {plan['step_seconds']} s steps · bound p99 ≤ {plan['p99_ms']:g} ms",
        f"  {'rate':>6} {'sent/s':>8} {'ack p50':>8} {'ack p99':>8} {'e2e p50':>8} {'e2e p99':>8}"
        f" {'lost':>5} {'errors':>6} {'server':>7} {'pg':>5} {'driver':>7} {'lag ms':>7}"
        f" {'others':>7} {'µs/msg':>7}  verdict",
    ]
    for s in result["steps"]:
        lines.append(
            f"  {s['rate']:>6g} {s['sent_per_s']:>8g} {fmt_ms(s['ack_p50']):>8}"
            f" {fmt_ms(s['ack_p99'] if s['ack_p99'] is not None else math.inf):>8}"
            f" {fmt_ms(s['e2e_p50']):>8}"
            f" {fmt_ms(s['e2e_p99'] if s['e2e_p99'] is not None else math.inf):>8}"
            f" {s['lost']:>5} {s['send_errors']:>6}"
            f" {_pct(s['server_cpu_avg']):>7} {_pct(s['postgres_cpu_avg']):>5}"
            f" {_pct(s['driver_cpu_avg']):>7} {fmt_ms(s['driver_max_lag_ms']):>7}"
            f" {_pct(s.get('other_cpu_avg')):>7}"
            f" {_us(s.get('cpu_us_per_message', {}).get('server')):>7}  "
            + ("PASS" if s["passed"] else f"FAIL: {s['why']}")
        )
    t = result["totals"]
    lines.append(
        f"  totals: sent {t['sent']} acked {t['acked']} delivered {t['delivered']} lost {t['lost']}"
        f" duplicated {t['duplicated']} unacked {t['unacked']}"
        + (f"; errors {result['errors']}" if result["errors"] else "")
    )
    lines.append(
        f"  highest sustained rate: {result['highest_sustained_rate']:g} msg/s"
        f" (p99 ≤ {plan['p99_ms']:g} ms, no loss, no send errors)"
        + ("" if result.get("bound_reached") else "; never failed: raise --max to find the limit")
    )
    return "\n".join(lines)


def render_idle(result: dict[str, Any]) -> str:
    i = result["idle"]
    lines = [
        "",
        f"== idle: {_server_label(result)} · {i['connected']}/{i['clients']} connections"
        f" opened in {i['connect_s']} s ({i['connects_per_s']}/s)",
    ]
    if i["monitored"]:
        lines += [
            f"  server rss before {i['server_rss_before_mb']} MB, with connections"
            f" {i['server_rss_after_mb']} MB",
            f"  rss per connection: {i['rss_per_connection_kib']} KiB",
            f"  server cpu while idle: {i['server_cpu_idle_avg']}%",
        ]
    else:
        lines.append("  (no server pid to measure: pass --hub-pid for an external hub)")
    if i["setup_errors"]:
        lines.append(f"  errors: {i['setup_errors']}")
    return "\n".join(lines)


def _us(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}%"


def render_soak(result: dict[str, Any]) -> str:
    t = result["totals"]
    k = result["kills"]
    r = result["reconnects"]
    o = result["options"]
    sent = t["sent"] or 1
    redelivered = ", ".join(f"{src} {n}" for src, n in sorted(t["redelivered"].items())) or "0"
    ready = k["restart_ready_s"]
    lines = [
        "",
        f"== soak: {_server_label(result)} · {result['connections']['clients']} clients "
        f"({result['population']['pairs']} pairs) · {o['rate']:g} msg/s for "
        f"{result['duration_s']:g} s · kill -9 every {k['kill_every_s']:g} s, "
        f"down {k['down_for_s']:g} s",
        f"  messages   sent {t['sent']}  acked {t['acked']} ({100 * t['acked'] / sent:.2f}%)"
        f"  delivered live {t['delivered_live']}  recovered by sync {t['recovered_by_sync']}"
        f" (+ {t['recovered_by_final_sync']} by the final sync)",
        f"             LOST {t['lost']}  duplicates {t['duplicates']}  corrupted {t['corrupted']}"
        f"  unacked {t['unacked']} ({t['unacked_but_delivered']} more unacked but delivered)"
        f"  failed {t['failed']}",
        f"             writes {t['writes']} (resent {t['resent']}, {t['ack_timeouts']} after an"
        f" ack timeout)  queued while offline {t['queued_offline']}"
        f"  redelivered, dropped by dedupe: {redelivered}",
        f"             final sync {t['final_sync_ok']} ok, {t['final_sync_failed']} failed;"
        f" seq gaps {t['seq_gaps']}; seen but not in the history {t['not_stored']};"
        f" unexpected {t['unexpected']}",
        f"  kills      {k['kills']} of {k['planned']} planned ({k['skipped']} skipped)"
        f" · restarts {k['restarts']}"
        + (f" (healthy {min(ready):g} to {max(ready):g} s after the respawn)" if ready else "")
        + f" · failed restarts {k['restart_failures']} · unexpected exits"
        f" {k['unexpected_exits']} · nodes up at the end {k['nodes_up_at_end']}/{k['nodes']}",
        f"  reconnect  drops {r['drops']}  reconnects {r['reconnects']}  gave up {r['gave_up']}"
        f"  · drop → connected ms p50 {fmt_ms(r['time_ms']['p50'])}"
        f" p99 {fmt_ms(r['time_ms']['p99'])} max {fmt_ms(r['time_ms']['max'])}",
    ]
    if r["per_kill"]:
        lines.append(
            "             per kill: "
            + "; ".join(
                f"{x['t']:g} s: {x['reconnects']} p99 {fmt_ms(x['p99'])}" for x in r["per_kill"]
            )
        )
    refusals = r["refusals"]
    lines.append(
        "  refused    "
        + (", ".join(f"{c} {n}" for c, n in sorted(refusals.items())) if refusals else "none")
        + "   (failed connect attempts while reconnecting, by code)"
    )
    lines.append(f"  latency ms {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for name, key in (("ack", "ack"), ("live dlv", "delivery_live")):
        x = result["latency_ms"][key]
        if x["count"]:
            lines.append(
                f"  {name:<11}{fmt_ms(x['p50']):>8} {fmt_ms(x['p90']):>8} {fmt_ms(x['p99']):>8}"
                f" {fmt_ms(x['max']):>8}   ({x['count']} samples, from the due time)"
            )
    errors = result["errors"]
    lines.append(
        "  errors     "
        + (", ".join(f"{c} {n}" for c, n in sorted(errors.items())) if errors else "none")
        + "   (as the phones saw them)"
    )
    log = result["hub_log"]
    lines.append(
        f"  hub logs   {log['errors']} errors, {log['warnings']} warnings,"
        f" {log['tracebacks']} tracebacks"
    )
    for sample in log["samples"][:3]:
        lines.append(f"             {sample}")
    res = result["resources"]
    per_node = [
        f"node {n} {res[f'server{n}_rss_mb_max']:.0f}"
        for n in range(1, result.get("servers", 0) + 1)
        if f"server{n}_rss_mb_max" in res
    ]
    if per_node:
        lines.append("  hubs rss   max MB: " + ", ".join(per_node))
    if res.get("server_rss_mb_by_minute"):
        lines.append(
            "             all nodes, max of each minute (MB): "
            + " ".join(f"{v:.0f}" for v in res["server_rss_mb_by_minute"])
        )
    lines.extend(_resources_lines(result))
    for check in result.get("expectations", []):
        mark = "PASS" if check["passed"] else "FAIL"
        lines.append(f"  {mark}  {check['name']}: target {check['target']}, got {check['actual']}")
    for sample in t["lost_samples"][:5]:
        lines.append(f"    lost: {sample}")
    for sample in t["duplicate_samples"][:5]:
        lines.append(f"    duplicate: {sample}")
    for event in k["events"]:
        if event.get("log_tail"):
            lines.append(f"  {event['kind']} node {event['node']} at {event['t']} s; log tail:")
            lines.extend("    " + line for line in event["log_tail"].splitlines()[-10:])
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    if result["kind"] == "soak":
        return render_soak(result)
    if result["kind"] == "step":
        return render_step(result)
    if result["kind"] == "idle":
        return render_idle(result)
    return render_run(result)


def save(result: dict[str, Any], out: Path, chart: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    (out / "report.json").write_text(json.dumps(result, indent=1, default=_json_default))
    if chart and result.get("timeline"):
        path = out / "chart.png"
        if result["kind"] == "soak":
            draw_soak_chart(result, path)
        else:
            draw_chart(result, path)
        written.append(path)
    return written


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value)}")


def draw_chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["timeline"]
    t = [r["t"] for r in rows]
    fig, (rate_ax, lat_ax, cpu_ax) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    label = _server_label(result)
    pairs = result["population"]["pairs"]
    fig.suptitle(f"{result['kind']} · {label} · {pairs} pairs · mix {result['mix']['name']}")
    rate_ax.plot(t, [r["target_rate"] for r in rows], "k--", lw=1, label="target")
    rate_ax.plot(t, [r["sent"] for r in rows], label="sent/s")
    rate_ax.plot(t, [r["acked"] for r in rows], label="acked/s")
    rate_ax.plot(t, [r["delivered"] for r in rows], label="delivered/s")
    errors = [r["errors"] for r in rows]
    if any(errors):
        rate_ax.bar(t, errors, color="red", alpha=0.5, label="errors/s")
    rate_ax.set_ylabel("messages / s")
    rate_ax.legend(loc="upper left", fontsize=8)
    rate_ax.grid(alpha=0.3)

    for key, style, name in (
        ("ack_p50", "-", "ack p50"),
        ("ack_p99", "-", "ack p99"),
        ("e2e_p50", "--", "delivery p50"),
        ("e2e_p99", "--", "delivery p99"),
    ):
        values = [r[key] if r[key] is not None else float("nan") for r in rows]
        lat_ax.plot(t, values, style, label=name)
    bound = (result.get("step") or {}).get("p99_ms")
    if bound:
        lat_ax.axhline(bound, color="red", lw=0.8, ls=":", label=f"{bound:g} ms")
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency ms (by arrival second)")
    lat_ax.legend(loc="upper left", fontsize=8)
    lat_ax.grid(alpha=0.3, which="both")

    for key, name in (
        ("server_cpu", label),
        ("postgres_cpu", "postgres"),
        ("redis_cpu", "redis"),
        ("driver_cpu", "driver"),
    ):
        values = [r.get(key, float("nan")) for r in rows]
        if any(not math.isnan(v) for v in values):
            cpu_ax.plot(t, values, label=name)
    cpu_ax.set_ylabel("cpu % (100 = one core)")
    cpu_ax.set_xlabel("seconds since the start")
    cpu_ax.legend(loc="upper left", fontsize=8)
    cpu_ax.grid(alpha=0.3)
    rss_ax = cpu_ax.twinx()
    rss_ax.plot(t, [r.get("server_rss_mb", float("nan")) for r in rows], "k:", lw=1)
    rss_ax.set_ylabel(f"{label} rss MB (dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_soak_chart(result: dict[str, Any], path: Path) -> None:
    """Rates, latency, sockets per node and CPU/RSS per node; kills in red, restarts green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["timeline"]
    t = [r["t"] for r in rows]
    nan = float("nan")
    fig, axes = plt.subplots(4, 1, figsize=(12, 13), sharex=True)
    rate_ax, lat_ax, conn_ax, cpu_ax = axes
    k = result["kills"]
    fig.suptitle(
        f"soak · {_server_label(result)} · {result['population']['pairs']} pairs · "
        f"{result['options']['rate']:g} msg/s · kill -9 every {k['kill_every_s']:g} s "
        f"(down {k['down_for_s']:g} s) · lost {result['totals']['lost']}"
    )
    rate_ax.plot(t, [r["target_rate"] for r in rows], "k--", lw=1, label="target")
    rate_ax.plot(t, [r["sent"] for r in rows], label="sent/s")
    rate_ax.plot(t, [r["acked"] for r in rows], label="acked/s")
    rate_ax.plot(t, [r["delivered"] for r in rows], label="delivered live/s")
    rate_ax.plot(t, [r.get("recovered", 0) for r in rows], label="recovered by sync/s")
    rate_ax.set_ylabel("messages / s")

    for key, style, name in (
        ("ack_p50", "-", "ack p50"),
        ("ack_p99", "-", "ack p99"),
        ("e2e_p50", "--", "live delivery p50"),
        ("e2e_p99", "--", "live delivery p99"),
    ):
        lat_ax.plot(t, [r[key] if r[key] is not None else nan for r in rows], style, label=name)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency ms (by arrival second)")

    nodes = result.get("servers", 0)
    for number in range(nodes):
        conn_ax.plot(
            t,
            [r["conn_by_node"][number] if "conn_by_node" in r else nan for r in rows],
            label=f"sockets on node {number + 1}",
        )
    conn_ax.plot(t, [r.get("outbox", 0) for r in rows], ":", label="outbox (unacked)")
    conn_ax.plot(t, [r.get("reconnects", 0) for r in rows], ".", ms=3, label="reconnects/s")
    conn_ax.set_ylabel("phones")

    rss_ax = cpu_ax.twinx()
    for number in range(1, nodes + 1):
        cpu_ax.plot(t, [r.get(f"server{number}_cpu", nan) for r in rows], label=f"node {number}")
        rss_ax.plot(
            t,
            [r.get(f"server{number}_rss_mb", nan) for r in rows],
            ":",
            lw=1.2,
            label=f"node {number} rss",
        )
    for key, name in (("postgres_cpu", "postgres"), ("driver_cpu", "driver")):
        cpu_ax.plot(t, [r.get(key, nan) for r in rows], lw=0.8, label=name)
    cpu_ax.set_ylabel("cpu % (100 = one core)")
    rss_ax.set_ylabel("rss MB (dotted)")
    cpu_ax.set_xlabel("seconds since the start")
    rss_ax.legend(loc="upper right", fontsize=7)

    for event in k["events"]:
        color = {"kill": "red", "restarted": "green"}.get(event["kind"], "orange")
        for ax in axes:
            ax.axvline(event["t"], color=color, lw=0.8, ls="-" if color == "red" else ":")
    rate_ax.plot([], [], color="red", lw=0.8, label="kill -9")
    rate_ax.plot([], [], color="green", lw=0.8, ls=":", label="restarted")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_compare(rows: list[dict[str, Any]], mode: str) -> str:
    """rows: [{target, rate, p99, result}], the hub last."""
    hub = next((r for r in rows if r["target"] == "hub"), None)
    lines = ["", f"== compare ({mode})"]
    lines.append(
        f"  {'target':<14} {'rate msg/s':>11} {'ack p99':>9} {'e2e p99':>9} {'lost':>6}"
        f" {'server cpu':>11}"
    )
    for r in rows:
        lines.append(
            f"  {r['target']:<14} {r['rate']:>11g} {fmt_ms(r['ack_p99']):>9}"
            f" {fmt_ms(r['e2e_p99']):>9} {r['lost']:>6} {_pct(r['server_cpu']):>11}"
        )
    if hub is not None:
        for r in rows:
            if r is hub:
                continue
            rate_ratio = hub["rate"] / r["rate"] if r["rate"] else float("nan")
            p99_ratio = (
                hub["e2e_p99"] / r["e2e_p99"]
                if hub["e2e_p99"] is not None and r["e2e_p99"]
                else float("nan")
            )
            lines.append(
                f"  hub vs {r['target']:<12}: rate x {rate_ratio:.2f},"
                f" delivery p99 x {p99_ratio:.2f}"
            )
    return "\n".join(lines)
