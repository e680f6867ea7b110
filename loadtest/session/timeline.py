"""The per-second timeline, assembled from the workers' ticks as they arrive.

Second ``t`` becomes a row once every worker still running has sent its tick ``t`` (a worker
that finished early sends no more); the row merges them, adds a CPU/RSS sample taken then,
and the target rate of that second. What is left at the end (ticks after the last full row,
and each worker's final partial tick ``-1``) is counted in the totals but makes no row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from loadtest.model.timeline import Second, SoakSecond, Usage
from loadtest.pipe import Tick
from loadtest.session.collected import Collected, MergedTick
from loadtest.session.schedule import Schedule
from loadtest.stats import summary

SoakColumns = Callable[[int, MergedTick], SoakSecond]


class Timeline:
    """The rows so far, and the ticks that wait for the other workers' ticks of their second."""

    def __init__(self, collected: Collected, sample: Callable[[], Usage]) -> None:
        self.collected = collected
        self.sample = sample  # a CPU/RSS sample now
        self.rows: list[Second] = []
        self.pending: dict[int, dict[int, Tick]] = {}  # second -> worker -> tick
        self.next_row = 1

    def add(self, worker: int, tick: Tick) -> None:
        self.pending.setdefault(tick.index, {})[worker] = tick

    def complete_rows(
        self, running: int, schedule: Schedule, soak: SoakColumns | None = None
    ) -> Iterator[Second]:
        """The rows that became complete, in order; ``running``: workers not finished."""
        while self._complete(self.next_row, running):
            index = self.next_row
            merged = self.collected.absorb(self.pending.pop(index))
            row = self.build(index, merged, schedule, soak)
            self.rows.append(row)
            self.next_row += 1
            yield row

    def absorb_rest(self) -> None:
        """Ticks no row will take: after the last full row, and the workers' final ones."""
        for index in sorted(self.pending):
            if index >= self.next_row or index == -1:
                self.collected.absorb(self.pending.pop(index))

    def _complete(self, index: int, running: int) -> bool:
        got = self.pending.get(index)
        return got is not None and len(got) >= running

    def build(
        self, index: int, merged: MergedTick, schedule: Schedule, soak: SoakColumns | None
    ) -> Second:
        c = merged.counters
        ack = summary(merged.ack_ms)
        e2e = summary(merged.e2e_ms)
        return Second(
            t=index,
            sent=c.get("sent", 0),
            acked=c.get("acked", 0),
            delivered=c.get("delivered", 0),
            errors=sum(merged.errors.values()),
            error_codes=dict(merged.errors),
            ack_p50=ack.p50,
            ack_p99=ack.p99,
            e2e_p50=e2e.p50,
            e2e_p99=e2e.p99,
            connections=merged.connections,
            overdue=merged.overdue,
            in_flight=merged.in_flight,
            max_lag_ms=round(merged.max_lag_ms, 1),
            write_buffer=merged.write_buffer,
            target_rate=schedule.rate_at(index - 0.5),
            usage=self.sample(),
            soak=soak(index, merged) if soak is not None else None,
        )
