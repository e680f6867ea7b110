"""What the run, step and soak tables share: the target's label and the resources block."""

from __future__ import annotations

from loadtest.model.common import Header
from loadtest.model.timeline import Resources


def server_label(header: Header) -> str:
    if header.target == "hub":
        return "hub" if header.servers == 1 else f"hubs (x{header.servers})"
    return str(header.target)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def resources_lines(header: Header, r: Resources) -> list[str]:
    """CPU and RSS of the target, its nodes, PostgreSQL, Redis, the driver and the rest of the
    machine: the last says whether the numbers are about the hub or about a busy machine."""
    lines = []
    label = server_label(header)
    server = r.group("server")
    if server.cpu_avg is not None:
        lines.append(
            f"  {label:<10} cpu avg {server.cpu_avg:.0f}% max {server.cpu_max or 0:.0f}%"
            f"   rss {server.rss_mb_start or 0:.0f} → {server.rss_mb_end or 0:.0f} MB"
            f" (max {server.rss_mb_max or 0:.0f})"
        )
    for number in range(1, 9):
        node = r.group(f"server{number}")
        if node.cpu_avg is not None:
            lines.append(
                f"    node {number}   cpu avg {node.cpu_avg:.0f}% max {node.cpu_max or 0:.0f}%"
                f"   rss {node.rss_mb_end or 0:.0f} MB"
            )
    for name in ("postgres", "redis", "provider"):
        group = r.group(name)
        if group.cpu_avg is not None:
            lines.append(f"  {name:<10} cpu avg {group.cpu_avg:.0f}% max {group.cpu_max or 0:.0f}%")
    lines.extend(_driver_and_others(header, r))
    return lines


def _driver_and_others(header: Header, r: Resources) -> list[str]:
    lines = []
    cpus = header.machine.cpus
    driver = r.group("driver")
    if driver.cpu_avg is not None:
        lines.append(
            f"  {'driver':<10} cpu avg {driver.cpu_avg:.0f}% max {driver.cpu_max or 0:.0f}%"
            f"   max schedule lag {r.driver_max_lag_ms:.0f} ms"
            f"   ({header.options.workers} workers, {header.options.client_kind}"
            f" client, {cpus} cpus: 100% = one core)"
        )
    other = r.group("other")
    if other.cpu_avg is not None:
        busy = other.cpu_avg >= 20
        lines.append(
            f"  {'others':<10} cpu avg {other.cpu_avg:.0f}% max {other.cpu_max or 0:.0f}%"
            f"   (other processes on this machine; machine busy avg"
            f" {r.group('system').cpu_avg or 0:.0f}% of {100 * cpus}%)"
            + ("  ⚠ the machine was not quiet: numbers are pessimistic" if busy else "")
        )
    return lines
