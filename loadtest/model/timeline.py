"""The per-second timeline and the CPU/RSS numbers, which are keyed by process group.

Process groups are only known at run time (``server``, ``server1``…, ``postgres``, ``redis``,
``driver``), so a second's usage and the resource summary hold them in dicts and write
themselves as the flat keys report.json has always had (``server_cpu``, ``server1_rss_mb``,
``server_cpu_avg``…).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.model.encode import fields_to_json


@dataclass(frozen=True)
class Usage:
    """One sample of the monitor: CPU % (100 = one core) and RSS MB of each group."""

    t: float
    rss_mb: dict[str, float]  # every group
    cpu: dict[str, float] = field(default_factory=dict)  # from the second sample on
    system_cpu: float | None = None
    other_cpu: float | None = None

    def to_json(self) -> dict[str, object]:
        """As a timeline row's columns (without ``t``): ``{group}_cpu``, ``{group}_rss_mb``…"""
        out: dict[str, object] = {}
        for name, rss in self.rss_mb.items():
            if name in self.cpu:
                out[f"{name}_cpu"] = self.cpu[name]
            out[f"{name}_rss_mb"] = rss
        if self.system_cpu is not None:
            out["system_cpu"] = self.system_cpu
        if self.other_cpu is not None:
            out["other_cpu"] = self.other_cpu
        return out


@dataclass(frozen=True)
class SoakSecond:
    """The soak's own columns: recoveries, the outboxes, sockets per node, kill events."""

    recovered: int
    recovered_final: int
    resent: int
    reconnects: int
    drops: int
    outbox: int
    recovering: int
    conn_by_node: list[int]
    events: list[str]  # "kill 1", "restarted 1"… within this second
    nodes_up: int


@dataclass(frozen=True)
class Second:
    """One row of the timeline: the workers' merged tick for second ``t`` and a usage sample.
    Latencies are by arrival second."""

    t: int
    sent: int
    acked: int
    delivered: int
    errors: int
    error_codes: dict[str, int]
    ack_p50: float | None
    ack_p99: float | None
    e2e_p50: float | None
    e2e_p99: float | None
    connections: int
    overdue: int
    in_flight: int
    max_lag_ms: float
    write_buffer: int
    target_rate: float
    usage: Usage
    soak: SoakSecond | None = None

    def cpu(self, group: str) -> float | None:
        return self.usage.cpu.get(group)

    def rss_mb(self, group: str) -> float | None:
        return self.usage.rss_mb.get(group)

    def to_json(self) -> dict[str, object]:
        out = fields_to_json(self)
        out.pop("usage")
        out.pop("soak")
        out.update(self.usage.to_json())
        if self.soak is not None:
            out.update(fields_to_json(self.soak))
        return out


@dataclass(frozen=True)
class GroupUsage:
    """A process group's CPU and RSS over a span of the timeline."""

    cpu_avg: float | None = None
    cpu_max: float | None = None
    rss_mb_start: float | None = None
    rss_mb_end: float | None = None
    rss_mb_max: float | None = None


@dataclass(frozen=True)
class Resources:
    """CPU/RSS by group over a span (``system`` and ``other`` have CPU only)."""

    groups: dict[str, GroupUsage]
    driver_max_lag_ms: float
    server_rss_mb_by_minute: list[float] | None = None  # soak: all nodes, max of each minute

    def group(self, name: str) -> GroupUsage:
        return self.groups.get(name) or GroupUsage()

    def cpu_avg(self, name: str) -> float | None:
        return self.group(name).cpu_avg

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, usage in self.groups.items():
            if usage.cpu_avg is not None:
                out[f"{name}_cpu_avg"] = usage.cpu_avg
                out[f"{name}_cpu_max"] = usage.cpu_max
            if usage.rss_mb_start is not None:
                out[f"{name}_rss_mb_start"] = usage.rss_mb_start
                out[f"{name}_rss_mb_end"] = usage.rss_mb_end
                out[f"{name}_rss_mb_max"] = usage.rss_mb_max
        out["driver_max_lag_ms"] = self.driver_max_lag_ms
        if self.server_rss_mb_by_minute is not None:
            out["server_rss_mb_by_minute"] = self.server_rss_mb_by_minute
        return out
