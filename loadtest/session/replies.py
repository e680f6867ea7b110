"""What the workers said about themselves, apart from the per-second ticks: how far their
setup got, that they are ready, how their messages ended, or that they failed."""

from __future__ import annotations

from collections import Counter

from loadtest.pipe import (
    DirectTally,
    Failed,
    Final,
    PhaseProgress,
    Ready,
    Registered,
    SoakTally,
    WorkerMessage,
)
from loadtest.session.failure import RunFailed


class Replies:
    """Each worker's last word per kind of message, by worker index."""

    def __init__(self) -> None:
        self.progress: dict[int, PhaseProgress] = {}
        self.registered: dict[int, Registered] = {}
        self.ready: dict[int, Ready] = {}
        self.finals: dict[int, Final] = {}  # in arrival order: the samples keep that order
        self.setup_errors: Counter[str] = Counter()

    def record(self, index: int, message: WorkerMessage) -> None:
        if isinstance(message, PhaseProgress):
            self.progress[index] = message
        elif isinstance(message, Registered):
            self.registered[index] = message
        elif isinstance(message, Ready):
            self.ready[index] = message
            self.setup_errors.update(message.errors)
        elif isinstance(message, Final):
            self.finals[index] = message
        elif isinstance(message, Failed):
            raise RunFailed(f"worker {index} failed:\n{message.traceback}")

    def done(self, phase: str) -> int:
        """Users past ``phase`` over all workers, as they last reported."""
        return sum(p.done for p in self.progress.values() if p.phase == phase)

    def connected(self) -> int:
        return sum(r.connected for r in self.ready.values())

    def connected_at_end(self) -> int:
        return sum(f.connected for f in self.finals.values())

    def direct_tallies(self) -> list[DirectTally]:
        return [f.tally for f in self.finals.values() if isinstance(f.tally, DirectTally)]

    def soak_tallies(self) -> list[SoakTally]:
        return [f.tally for f in self.finals.values() if isinstance(f.tally, SoakTally)]
