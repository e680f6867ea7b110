"""Everything the ticks carried, accumulated over the session: latency samples, sends by
second, counters and errors, and each worker's last socket count.

``absorb`` also merges one second's ticks (one per worker) into a ``MergedTick``: the timeline
row is built from that, the totals from what is kept here.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass

import numpy as np

from loadtest.pipe import Tick
from loadtest.stats import Samples

HEADLINE = ("sent", "acked", "delivered")  # reported on their own, not among the extras


@dataclass(frozen=True)
class MergedTick:
    """One second over all workers: sums, maxima, and that second's latency samples."""

    counters: Counter[str]
    errors: Counter[str]
    gauges: Counter[str]
    connections: int  # every worker's last count, including workers that sent no tick
    overdue: int
    in_flight: int
    write_buffer: int  # the largest socket buffer of any worker
    max_lag_ms: float
    ack_ms: np.ndarray
    e2e_ms: np.ndarray


class Collected:
    """The running totals over every tick absorbed, for the result after the drive."""

    def __init__(self) -> None:
        self.ack = Samples()
        self.e2e = Samples()
        self.other_ack_chunks: list[bytes] = []
        self.sent_by_second: Counter[int] = Counter()
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.last_connections: dict[int, int] = {}

    def absorb(self, per_worker: dict[int, Tick]) -> MergedTick:
        counters: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        gauges: Counter[str] = Counter()
        overdue = in_flight = write_buffer = 0
        max_lag_ms = 0.0
        ack, e2e = Samples(), Samples()
        for index, tick in per_worker.items():
            interval = tick.interval
            self.last_connections[index] = tick.connections
            counters.update(interval.counters)
            errors.update(interval.errors)
            gauges.update(tick.gauges)
            overdue += tick.overdue
            in_flight += tick.in_flight
            write_buffer = max(write_buffer, tick.write_buffer)
            max_lag_ms = max(max_lag_ms, interval.max_lag_ms)
            self.ack.add(interval.ack)
            self.e2e.add(interval.e2e)
            if interval.other_ack:
                self.other_ack_chunks.append(interval.other_ack)
            ack.add(interval.ack)
            e2e.add(interval.e2e)
            self.sent_by_second.update(interval.sent_by_second)
        self.counters.update(counters)
        self.errors.update(errors)
        return MergedTick(
            counters=counters,
            errors=errors,
            gauges=gauges,
            connections=sum(self.last_connections.values()),
            overdue=overdue,
            in_flight=in_flight,
            write_buffer=write_buffer,
            max_lag_ms=max_lag_ms,
            ack_ms=ack.latencies(),
            e2e_ms=e2e.latencies(),
        )

    def other_ack_values(self) -> np.ndarray:
        flat = array("d")
        for chunk in self.other_ack_chunks:
            flat.frombytes(chunk)
        return np.frombuffer(flat, dtype=np.float64).copy()

    def extras(self) -> dict[str, int]:
        """Every counter but the headline ones, sorted by name."""
        return {k: v for k, v in sorted(self.counters.items()) if k not in HEADLINE}

    def sent_between(self, start_s: float, end_s: float) -> int:
        return sum(n for s, n in self.sent_by_second.items() if start_s <= s < end_s)

    def last_sent_second(self) -> int:
        return max(self.sent_by_second) if self.sent_by_second else -1
