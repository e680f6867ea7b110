"""A run's result: one open-loop rate for a duration, and whether it met its targets."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.model.common import Check, Header, Latency, MessageTotals
from loadtest.model.encode import FLAT
from loadtest.model.push import PushResult
from loadtest.model.timeline import Resources, Second


@dataclass(frozen=True)
class RunRates:
    target: float
    sent_per_s: float
    acked_per_s: float
    delivered_per_s: float


@dataclass(frozen=True)
class RunLatency:
    """From the due time; the ``counting_missing`` p99s count a missing ack/delivery as ∞
    (None then), which is what ``--expect-p99-ms`` judges."""

    ack: Latency
    delivery: Latency
    receipt_and_typing_ack: Latency
    ack_p99_counting_missing: float | None
    delivery_p99_counting_missing: float | None


@dataclass(frozen=True)
class Connections:
    clients: int
    at_start: int
    at_end: int
    disconnects: int


@dataclass(frozen=True)
class RunResult:
    """``report.json`` of ``run`` (and of each target of ``compare``)."""

    header: Header = field(metadata=FLAT)
    duration_s: float
    rate: RunRates
    totals: MessageTotals
    latency_ms: RunLatency
    errors: dict[str, int]
    setup_errors: dict[str, int]
    extras: dict[str, int]  # every other counter: receipts, typing, presence, churn
    connections: Connections
    resources: Resources
    cpu_us_per_message: dict[str, float]  # by process group
    timeline: list[Second]
    expectations: list[Check]
    passed: bool
    push: PushResult | None = None  # the push mix only
