"""A soak's result: traffic while nodes were killed and restarted, and whether anything
acknowledged was lost or stored twice. What each number means: loadtest/README.md, "Soak".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.model.common import Check, Header, Latency
from loadtest.model.encode import FLAT
from loadtest.model.timeline import Resources, Second
from loadtest.pipe import Sample
from loadtest.plan import SoakPlan


@dataclass(frozen=True)
class SoakRates:
    target: float
    sent_per_s: float
    acked_per_s: float


@dataclass(frozen=True)
class SoakTotals:
    sent: int
    writes: int
    resent: int
    queued_offline: int
    ack_timeouts: int
    acked: int
    delivered_live: int
    recovered_by_sync: int
    recovered_by_final_sync: int
    lost: int
    duplicates: int
    redelivered: dict[str, int]  # by where the second copy came from: live, sync, final
    unacked: int
    unacked_never_written: int
    unacked_but_delivered: int
    failed: int
    failed_codes: dict[str, int]
    corrupted: int
    unexpected: int
    seq_gaps: int
    not_stored: int
    final_sync_ok: int
    final_sync_failed: int
    lost_samples: list[Sample]
    duplicate_samples: list[Sample]


@dataclass(frozen=True)
class KillEvent:
    """Something the killer did or saw; only the details its kind has are written."""

    t: float
    kind: str  # kill | kill_skipped | restarted | restart_retry | restart_failed | unexpected_exit
    node: int
    pid: int | None = None
    code: int | None = None
    reason: str | None = None
    attempt: int | None = None
    down_s: float | None = None
    ready_s: float | None = None
    log_tail: str | None = None

    def details(self) -> dict[str, object]:
        """pid, code, reason, attempt, down_s, ready_s, log_tail: those it has, in that order."""
        names = ("pid", "code", "reason", "attempt", "down_s", "ready_s", "log_tail")
        values = {name: getattr(self, name) for name in names}
        return {name: value for name, value in values.items() if value is not None}

    def to_json(self) -> dict[str, object]:
        return {"t": self.t, "kind": self.kind, "node": self.node, **self.details()}


@dataclass(frozen=True)
class KillSummary:
    kill_every_s: float
    down_for_s: float
    planned: int
    kills: int
    skipped: int
    restarts: int
    restart_ready_s: list[float]  # respawn → /healthz answered, per restart
    restart_retries: int
    restart_failures: int
    unexpected_exits: int
    nodes_up_at_end: int
    nodes: int
    events: list[KillEvent]


@dataclass(frozen=True)
class KillReconnects:
    """The reconnects after one kill (until the next): drop → connected ms."""

    t: float
    reconnects: int
    p50: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True)
class Reconnects:
    drops: int
    reconnects: int
    gave_up: int
    time_ms: Latency
    per_kill: list[KillReconnects]
    refusals: dict[str, int]  # refused:<code> and error:<type>


@dataclass(frozen=True)
class SoakLatency:
    ack: Latency
    delivery_live: Latency


@dataclass(frozen=True)
class NodeLog:
    node: str
    errors: int
    warnings: int
    tracebacks: int


@dataclass(frozen=True)
class HubLog:
    errors: int
    warnings: int
    tracebacks: int
    by_node: list[NodeLog]
    samples: list[str]  # the first 10 ERROR lines


@dataclass(frozen=True)
class SoakConnections:
    clients: int
    at_start: int
    at_end: int


@dataclass(frozen=True)
class SoakResult:
    """``report.json`` of ``soak``."""

    header: Header = field(metadata=FLAT)
    duration_s: float
    rate: SoakRates
    totals: SoakTotals
    kills: KillSummary
    reconnects: Reconnects
    latency_ms: SoakLatency
    errors: dict[str, int]
    setup_errors: dict[str, int]
    hub_log: HubLog
    connections: SoakConnections
    resources: Resources
    cpu_us_per_message: dict[str, float]
    machine_busy: bool
    soak: SoakPlan
    timeline: list[Second]
    expectations: list[Check]
    passed: bool
