"""What the operator sees while a session runs: setup lines, a phase's progress, a line a
second. ``--quiet`` silences all of it (the result table is printed regardless)."""

from __future__ import annotations

import time
from collections.abc import Callable

from loadtest.model.timeline import Second
from loadtest.stats import fmt_ms


class Progress:
    """Prints unless ``--quiet``; ``line`` formats one timeline second (the soak has its own)."""

    def __init__(self, quiet: bool, line: Callable[[Second], str]) -> None:
        self.quiet = quiet
        self.line = line

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def second(self, row: Second) -> None:
        self.say(self.line(row))

    def phase(self, phase: str, done: int, total: int, started: float) -> None:
        """How many users the workers have registered or connected (the caller throttles)."""
        if done:
            rate = done / max(1e-6, time.monotonic() - started)
            self.say(f"  {phase}: {done}/{total} users ({rate:.0f}/s)")


def run_line(row: Second, servers: int) -> str:
    """The per-second line of run, step and compare."""
    parts = [
        f"[{row.t:4d}s]",
        f"send {row.sent:5d}/s",
        f"ack {row.acked:5d}/s",
        f"dlv {row.delivered:5d}/s",
        f"| ack p50 {fmt_ms(row.ack_p50)} p99 {fmt_ms(row.ack_p99)}",
        f"| e2e p99 {fmt_ms(row.e2e_p99)} ms",
        f"| err {row.errors}",
        f"| conn {row.connections}",
    ]
    usage = row.usage
    server_cpu = usage.cpu.get("server")
    if server_cpu is not None:
        label = "hub" if servers == 1 else f"hubsx{servers}"
        parts.append(f"| {label} {server_cpu:.0f}% {usage.rss_mb.get('server', 0):.0f}MB")
    for group, label in (("postgres", "pg"), ("redis", "redis")):
        cpu = usage.cpu.get(group)
        if cpu is not None:
            parts.append(f"{label} {cpu:.0f}%")
    if usage.other_cpu is not None and usage.other_cpu >= 20:
        parts.append(f"| OTHER {usage.other_cpu:.0f}%")
    driver_cpu = usage.cpu.get("driver")
    if driver_cpu is not None:
        parts.append(f"| driver {driver_cpu:.0f}% lag {row.max_lag_ms:.0f}ms")
    if row.overdue:
        parts.append(f"| overdue {row.overdue}")
    return " ".join(parts)
