"""The rate schedule of one drive: its segments, how long, and the instant it starts.

Every worker gets the same ``start_ns`` (one monotonic clock per machine), one second ahead so
that the message reaches them all before it; second ``t`` of the timeline is
``[start + t - 1, start + t)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from loadtest.plan import Segment

NS = 1_000_000_000


@dataclass(frozen=True)
class Schedule:
    segments: list[Segment]
    duration_s: float
    start_ns: int

    @classmethod
    def starting_in(cls, delay_s: float, segments: list[Segment], duration_s: float) -> Schedule:
        return cls(segments, duration_s, time.monotonic_ns() + int(delay_s * NS))

    def rate_at(self, t: float) -> float:
        """The target rate at ``t`` seconds after the start (0 once the duration is over)."""
        if t >= self.duration_s:
            return 0.0
        rate = 0.0
        for segment in self.segments:
            if t >= segment.at_s:
                rate = segment.rate
        return rate

    def seconds_at(self, now_ns: int) -> float:
        return (now_ns - self.start_ns) / NS

    def first_rate(self) -> float:
        return self.segments[0].rate if self.segments else 0.0
