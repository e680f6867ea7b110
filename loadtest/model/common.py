"""The parts every result shares: the header, latency summaries, checks, message totals.

The header goes at the top level of every report.json (``FLAT``): what ran, against what, on
which machine, and how long the setup took, so a file read months later says what it measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loadtest.model.encode import fields_to_json
from loadtest.options import Options
from loadtest.pipe import Sample
from loadtest.plan import Mix


@dataclass(frozen=True)
class Latency:
    """Percentiles in ms over a set of samples; all None when there was none."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


@dataclass(frozen=True)
class Check:
    """One expectation of a run or a soak: its target, what it got, and the verdict."""

    name: str
    target: float | int | str
    actual: float | int | None  # None: infinite (missing samples)
    passed: bool


def finite(value: float) -> float | None:
    """A percentile for the JSON: infinity (samples that never came) is null."""
    return None if math.isinf(value) else round(value, 2)


@dataclass(frozen=True)
class Population:
    pairs: int
    churners: int
    idle: int

    @property
    def clients(self) -> int:
        return 2 * self.pairs + self.churners + self.idle


@dataclass(frozen=True)
class Machine:
    cpus: int
    python: str


@dataclass(frozen=True)
class SetupInfo:
    """How the setup went: the servers, registering, connecting."""

    servers: str  # "external" or "spawned in 4.2 s"
    register_s: float
    server_rss_before_connect: int  # bytes, after registering and before any socket
    connect_s: float
    connected_at_start: int
    clients: int


@dataclass(frozen=True)
class Header:
    """What ran, against what, how: at the top level of every report.json."""

    kind: str  # run | step | idle | soak
    target: str
    servers: int
    urls: list[str]
    options: Options
    hub_env: dict[str, str]
    mix: Mix
    population: Population
    machine: Machine
    setup: SetupInfo
    started_at: str

    def to_json(self) -> dict[str, object]:
        out = fields_to_json(self)
        options = out["options"]
        assert isinstance(options, dict)
        options.pop("hub_env", None)  # at the top level, beside the options
        return out


@dataclass(frozen=True)
class MessageTotals:
    """How the direct messages of a run or a step ended, over all workers."""

    delivered: int
    duplicated: int
    corrupted: int
    unexpected: int
    ack_failed: int
    unacked: int
    unacked_sender_disconnected: int
    lost: int
    undeliverable: int
    sent: int
    acked: int
    connected_at_end: int
    lost_samples: list[Sample] = field(default_factory=list)  # the first 20
    offline_acked: int = 0  # the push mix: acked to recipients that never connect
