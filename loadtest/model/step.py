"""A step run's result: the ladder of rates, each step's verdict, the highest sustained rate."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.model.common import Header, MessageTotals
from loadtest.model.encode import FLAT
from loadtest.model.timeline import Resources, Second
from loadtest.options import StepPlan


@dataclass(frozen=True)
class StepVerdict:
    """One rung, over the messages *sent* in it (missing acks and deliveries count as ∞)."""

    rate: float
    from_s: int
    to_s: int
    sent: int
    sent_per_s: float
    acked: int
    ack_p50: float | None
    ack_p99: float | None  # None: ∞
    e2e_p50: float | None
    e2e_p99: float | None  # None: ∞
    lost: int
    send_errors: int
    server_cpu_avg: float | None
    postgres_cpu_avg: float | None
    driver_cpu_avg: float | None
    driver_max_lag_ms: float | None
    other_cpu_avg: float | None
    cpu_us_per_message: dict[str, float]
    passed: bool
    why: str  # what failed, comma-separated; "" when it passed


@dataclass(frozen=True)
class StepResult:
    """``report.json`` of ``step`` (and of each target of ``compare --step``)."""

    header: Header = field(metadata=FLAT)
    step: StepPlan
    steps: list[StepVerdict]
    highest_sustained_rate: float
    bound_reached: bool  # a step failed: the rate above the sustained one is the limit
    totals: MessageTotals
    errors: dict[str, int]
    extras: dict[str, int]
    resources: Resources
    timeline: list[Second]
    passed: bool

    def verdict_at(self, rate: float) -> StepVerdict | None:
        return next((s for s in self.steps if s.rate == rate), None)
