"""CPU and RSS over a span of the timeline, per process group, and CPU per message.

CPU per message is the steadier number on a shared machine: latency is what the machine
allowed, CPU time is what the work cost.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from loadtest.model.timeline import GroupUsage, Resources, Second

PER_MESSAGE = ("server", "postgres", "redis", "driver", "provider")


def summarize(
    timeline: list[Second], groups: Iterable[str], start_s: float, end_s: float
) -> Resources:
    """Over the rows with ``start_s < t <= end_s``: each monitored group, then the machine
    (``system``) and everything else on it (``other``)."""
    rows = [r for r in timeline if start_s < r.t <= end_s]
    out: dict[str, GroupUsage] = {}
    for name in groups:
        cpu = [c for r in rows if (c := r.usage.cpu.get(name)) is not None]
        rss = [m for r in rows if (m := r.usage.rss_mb.get(name)) is not None]
        out[name] = GroupUsage(
            cpu_avg=round(float(np.mean(cpu)), 1) if cpu else None,
            cpu_max=round(float(np.max(cpu)), 1) if cpu else None,
            rss_mb_start=rss[0] if rss else None,
            rss_mb_end=rss[-1] if rss else None,
            rss_mb_max=max(rss) if rss else None,
        )
    for name, values in (
        ("system", [c for r in rows if (c := r.usage.system_cpu) is not None]),
        ("other", [c for r in rows if (c := r.usage.other_cpu) is not None]),
    ):
        if values:
            out[name] = GroupUsage(
                cpu_avg=round(float(np.mean(values)), 1), cpu_max=round(float(np.max(values)), 1)
            )
    lags = [r.max_lag_ms for r in rows]
    return Resources(groups=out, driver_max_lag_ms=round(max(lags), 1) if lags else 0.0)


def cpu_per_message(resources: Resources, rate: float) -> dict[str, float]:
    """CPU microseconds each process group spent per message sent."""
    if rate <= 0:
        return {}
    out: dict[str, float] = {}
    for name in PER_MESSAGE:
        avg = resources.cpu_avg(name)
        if avg is not None:
            out[name] = round(avg / 100 * 1e6 / rate, 1)
    return out
