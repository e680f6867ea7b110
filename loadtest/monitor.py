"""CPU% and RSS of process groups (hub nodes, PostgreSQL, Redis, the driver) with psutil.

CPU% is the group's user+system CPU seconds per wall second x 100, so 100 % is one core;
processes that appear between samples (PostgreSQL backends) are picked up from the root's
children.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from loadtest.model.timeline import Usage

OURS = ("server", "postgres", "redis", "driver", "provider")


@dataclass
class Group:
    name: str
    pids: list[int]
    children: bool = False
    _last: dict[tuple[int, float], float] = field(default_factory=dict)
    _last_at: float = 0.0
    _last_at_epoch: float = 0.0

    def processes(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                found.append(proc)
                if self.children:
                    found.extend(proc.children(recursive=True))
            except psutil.Error:
                continue
        return found

    def sample(self) -> tuple[float | None, int]:
        """(CPU % since the previous sample (None at the first), RSS bytes now)."""
        now = time.monotonic()
        cpu: dict[tuple[int, float], float] = {}
        rss = 0
        for proc in self.processes():
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    cpu[key] = times.user + times.system
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        percent: float | None = None
        if self._last_at:
            spent = sum(value - self._last.get(key, value) for key, value in cpu.items())
            # a process first seen now: count all it has used since it was created, if recent
            for key, value in cpu.items():
                if key not in self._last and key[1] >= self._last_at_epoch:
                    spent += value
            percent = 100.0 * spent / max(1e-6, now - self._last_at)
        self._last = cpu
        self._last_at = now
        self._last_at_epoch = time.time()
        return percent, rss


class Monitor:
    """Samples every group on demand (once a second while a schedule runs)."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self._system: tuple[float, float] | None = None

    def add(self, name: str, pids: list[int], children: bool = False) -> None:
        if pids:
            self.groups[name] = Group(name, list(pids), children)

    def replace(self, name: str, pids: list[int]) -> None:
        """A restarted process: keep measuring it under the same group name."""
        group = self.groups.get(name)
        if group is not None:
            group.pids = list(pids)

    def sample(self, t: float) -> Usage:
        cpu: dict[str, float] = {}
        rss_mb: dict[str, float] = {}
        for name, group in self.groups.items():
            percent, rss = group.sample()
            if percent is not None:
                cpu[name] = round(percent, 1)
            rss_mb[name] = round(rss / 2**20, 1)
        system = self._system_cpu()
        if system is None:
            return Usage(round(t, 3), rss_mb, cpu)
        ours = sum(cpu.get(name, 0.0) for name in OURS)
        # whatever else runs on the machine: it competes with the run for the same cores
        other = round(max(0.0, system - ours), 1)
        return Usage(round(t, 3), rss_mb, cpu, round(system, 1), other)

    def _system_cpu(self) -> float | None:
        """Busy CPU of the whole machine since the last sample, 100 = one core."""
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        last, self._system = self._system, (total, idle)
        if last is None or total <= last[0]:
            return None
        busy_share = 1 - (idle - last[1]) / (total - last[0])
        return float(100.0 * busy_share * cpu_count())

    def rss(self, name: str) -> int:
        group = self.groups.get(name)
        if group is None:
            return 0
        total = 0
        for proc in group.processes():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total


def cpu_count() -> int:
    return psutil.cpu_count() or 1
