"""What crosses the ``multiprocessing`` pipe between the parent and a worker, as typed messages.

Plain frozen dataclasses (pickled), no behaviour beyond merging tallies: the parent never
guesses at a dict's keys, and a field added on one side is a type error on the other.

    worker → parent: PhaseProgress · Registered · Ready · Tick (each second, and index -1 for
                     the last partial second) · Final · Failed
    parent → worker: Connect · Start · Halt · Close
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from loadtest.plan import Segment

Sample = dict[str, object]  # one lost or duplicate message, as the report shows it (camelCase)


# -- worker → parent ----------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseProgress:
    phase: str  # register | connect
    done: int
    total: int


@dataclass(frozen=True)
class Registered:
    users: int


@dataclass(frozen=True)
class Ready:
    connected: int
    errors: dict[str, int]


@dataclass(frozen=True)
class Interval:
    """A worker's counts between two ticks; latencies as flattened float64 (send s, ms) pairs."""

    counters: dict[str, int]
    errors: dict[str, int]
    ack: bytes
    e2e: bytes
    other_ack: bytes  # receipts and typing: latency ms only
    sent_by_second: dict[int, int]
    max_lag_ms: float


@dataclass(frozen=True)
class Tick:
    index: int  # seconds since the start; -1: what was left after the drain
    interval: Interval
    connections: int
    overdue: int
    in_flight: int
    write_buffer: int
    gauges: dict[str, int] = field(default_factory=dict)  # summed over workers


@dataclass(frozen=True)
class DirectTally:
    """How a worker's direct messages ended (run, step, compare)."""

    delivered: int
    duplicated: int
    corrupted: int
    unexpected: int
    ack_failed: int
    unacked: int
    unacked_sender_disconnected: int
    lost: int
    undeliverable: int
    lost_samples: list[Sample]
    lost_seconds: list[float]  # send second of each lost message, for the step verdicts
    offline_acked: int = 0  # the push mix: acked to recipients that never connect
    offline_commits: list[tuple[str, str, int]] = field(default_factory=list)  # id, from, ms


@dataclass(frozen=True)
class SoakTally:
    """How a worker's soak messages ended; ``merge`` adds up the workers'."""

    acked_ids: int = 0
    lost: int = 0
    lost_samples: list[Sample] = field(default_factory=list)
    unacked: int = 0
    unacked_never_written: int = 0
    unacked_but_delivered: int = 0
    failed: int = 0
    failed_codes: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicate_samples: list[Sample] = field(default_factory=list)
    redelivered: dict[str, int] = field(default_factory=dict)
    unexpected: int = 0
    corrupted: int = 0
    seq_gaps: int = 0
    not_stored: int = 0
    reconnect_gave_up: int = 0
    reconnect_times: list[tuple[float, float]] = field(default_factory=list)  # (drop s, ms)
    refusals: dict[str, int] = field(default_factory=dict)
    final_sync_ok: int = 0
    final_sync_failed: int = 0

    @classmethod
    def merge(cls, tallies: list[SoakTally]) -> SoakTally:
        """Counts summed, samples and times concatenated in the order given."""

        def total(name: str) -> int:
            return sum(getattr(t, name) for t in tallies)

        def joined(name: str) -> Counter[str]:
            out: Counter[str] = Counter()
            for t in tallies:
                out.update(getattr(t, name))
            return out

        return cls(
            acked_ids=total("acked_ids"),
            lost=total("lost"),
            lost_samples=[s for t in tallies for s in t.lost_samples],
            unacked=total("unacked"),
            unacked_never_written=total("unacked_never_written"),
            unacked_but_delivered=total("unacked_but_delivered"),
            failed=total("failed"),
            failed_codes=dict(joined("failed_codes")),
            duplicates=total("duplicates"),
            duplicate_samples=[s for t in tallies for s in t.duplicate_samples],
            redelivered=dict(joined("redelivered")),
            unexpected=total("unexpected"),
            corrupted=total("corrupted"),
            seq_gaps=total("seq_gaps"),
            not_stored=total("not_stored"),
            reconnect_gave_up=total("reconnect_gave_up"),
            reconnect_times=[x for t in tallies for x in t.reconnect_times],
            refusals=dict(joined("refusals")),
            final_sync_ok=total("final_sync_ok"),
            final_sync_failed=total("final_sync_failed"),
        )


@dataclass(frozen=True)
class Final:
    connected: int
    tally: DirectTally | SoakTally


@dataclass(frozen=True)
class Failed:
    traceback: str


WorkerMessage = PhaseProgress | Registered | Ready | Tick | Final | Failed


# -- parent → worker ----------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """Registration is done everywhere: open the sockets."""


@dataclass(frozen=True)
class Start:
    start_ns: int  # the same instant for every worker (one monotonic clock per machine)
    segments: list[Segment]
    duration_s: float


@dataclass(frozen=True)
class Halt:
    """A step failed: stop sending, drain and report."""


@dataclass(frozen=True)
class Close:
    """Close the sockets and exit."""


ParentMessage = Connect | Start | Halt | Close
