"""An idle measurement: what N open, authenticated, silent sockets cost the server."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.model.common import Header
from loadtest.model.encode import FLAT


@dataclass(frozen=True)
class IdleMeasurement:
    clients: int
    connected: int
    connect_s: float
    connects_per_s: float
    server_rss_before_mb: float
    server_rss_after_mb: float  # median over the hold
    rss_per_connection_kib: float | None  # None: the server was not monitored
    server_cpu_idle_avg: float | None
    setup_errors: dict[str, int]
    monitored: bool


@dataclass(frozen=True)
class IdleResult:
    """``report.json`` of ``idle``."""

    header: Header = field(metadata=FLAT)
    idle: IdleMeasurement
    passed: bool
