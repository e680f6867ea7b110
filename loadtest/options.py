"""What the command line asks for: the session's options, and each mode's own parameters.

Frozen: a mode reads them, never changes them, and the result repeats them (``options``,
``step`` in report.json) as they were given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.plan import HUB, Mix


@dataclass(frozen=True)
class Options:
    """The session's options: the target, the population, the driver, the drain."""

    target: str = HUB
    hub_urls: list[str] = field(default_factory=list)
    spawn_hubs: int = 1
    hub_pids: list[int] = field(default_factory=list)
    hub_env: dict[str, str] = field(default_factory=dict)
    push_provider: bool = False  # the fake FCM configured even when the mix pushes nothing
    clients: int = 2000
    rate: float = 1000.0
    duration: float = 60.0
    mix: str = "chat"
    workers: int = 2
    client_kind: str = "raw"
    placement: str = "split"
    register_concurrency: int = 16
    connect_concurrency: int = 50
    drain_timeout: float = 15.0
    ack_timeout: float = 30.0
    seed: int = 1
    quiet: bool = False
    keep: bool = False

    def effective_mix(self) -> Mix:
        # the relays only relay message:send: receipts, typing and presence need the hub
        return Mix.named(self.mix if self.target == HUB else "dm")


@dataclass(frozen=True)
class Targets:
    """``run --expect-*``: what the run must reach; None is not checked."""

    rate: float | None = None
    p99_ms: float | None = None
    loss: int | None = None
    errors: int | None = None


@dataclass(frozen=True)
class StepPlan:
    start: float
    step: float
    max: float
    step_seconds: int
    p99_ms: float
    grace_s: int = 3  # a step is judged this long after it ended: its last acks are in

    def rates(self) -> list[float]:
        if self.step <= 0:  # the ladder would never reach --max
            raise ValueError("no step: the step must be above 0")
        rates, rate = [], self.start
        while rate <= self.max + 1e-9:
            rates.append(rate)
            rate += self.step
        return rates


@dataclass(frozen=True)
class KillPlan:
    """``soak``: a ``kill -9`` every ``every_s``, the node back ``down_s`` later."""

    every_s: float = 60.0
    down_s: float = 10.0
    restart_timeout_s: float = 90.0
    restart_attempts: int = 3
