"""A comparison: the same load on each target, one row each, the hub last.

compare.json is the list of rows; each target's own result is saved beside it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompareRow:
    target: str
    rate: float  # acked/s of the run, or the highest sustained rate of the step run
    ack_p99: float | None
    e2e_p99: float | None
    lost: int
    server_cpu: float | None


@dataclass(frozen=True)
class Comparison:
    """The rows of ``compare`` (compare.json) and what was compared (the table's title)."""

    mode: str  # what was compared, for the title: "1500 msg/s for 60 s", "highest sustained rate"
    rows: list[CompareRow]

    def hub(self) -> CompareRow | None:
        return next((r for r in self.rows if r.target == "hub"), None)
