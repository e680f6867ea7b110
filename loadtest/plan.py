"""What the parent hands each worker process: who its users are and where they connect.

Plain dataclasses (pickled through ``multiprocessing``), no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HUB = "hub"
PEERS = ("python-relay", "node-relay")
TARGETS = (HUB, *PEERS)


@dataclass(frozen=True)
class Mix:
    """What the phones do besides the paced direct messages.

    ``dm``: direct messages only. ``chat``: plus delivered/read receipts, typing indicators
    before some messages, and presence churn (a few users going off- and online while others
    watch their presence). ``push``: direct messages where ``offline_ratio`` of the pairs'
    recipients never connect and have an FCM token at the kit's local fake FCM instead, so
    their messages become pushes (the locked phone in a pocket).
    """

    name: str = "chat"
    receipts: bool = True
    receipt_delay_s: tuple[float, float] = (0.3, 1.0)
    read_ratio: float = 0.5
    read_delay_s: tuple[float, float] = (1.0, 3.0)
    typing_ratio: float = 0.2
    churn_fraction: float = 0.05
    churn_cycle_s: float = 10.0
    churn_down_s: tuple[float, float] = (1.0, 3.0)
    watchers_per_churner: int = 3
    offline_ratio: float = 0.0

    @property
    def pushes(self) -> bool:
        return self.offline_ratio > 0

    def offline(self, pair_index: int) -> bool:
        """Whether this pair's recipient stays offline (spread evenly over the pairs)."""
        r = self.offline_ratio
        return int((pair_index + 1) * r) > int(pair_index * r)

    @classmethod
    def named(cls, name: str) -> Mix:
        if name == "chat":
            return cls()
        if name in ("dm", "push"):
            return cls(
                name=name,
                receipts=False,
                read_ratio=0.0,
                typing_ratio=0.0,
                churn_fraction=0.0,
                offline_ratio=0.5 if name == "push" else 0.0,
            )
        raise ValueError(f"unknown mix {name!r} (dm, chat or push)")


@dataclass(frozen=True)
class PairPlan:
    index: int
    sender_url: str
    recipient_url: str


@dataclass(frozen=True)
class SoakPlan:
    """How the soak's phones recover from a killed node (see phones/recovery.py)."""

    reconnect_attempts: int = 12  # per drop, over the nodes in turn, with backoff
    backoff_s: float = 0.25  # before attempt k: backoff_s * 2**k (capped), times 0.5..1
    backoff_max_s: float = 5.0
    connect_timeout_s: float = 10.0
    resend_attempts: int = 5  # writes of one message beyond the first
    retry_after_s: float = 1.0  # after a retryable refusal (unavailable, rate_limited)
    sync_page: int = 500
    sync_timeout_s: float = 20.0
    gap_sync_delay_s: float = 2.0  # a seq gap still open after this: sync
    final_sync_timeout_s: float = 180.0
    final_sync_concurrency: int = 8


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    workers: int
    run_id: str
    target: str
    client_kind: str
    mix: Mix
    rest_urls: list[str]
    pairs: list[PairPlan] = field(default_factory=list)
    churner_urls: list[str] = field(default_factory=list)
    idle_urls: list[str] = field(default_factory=list)
    register_concurrency: int = 16
    connect_concurrency: int = 50
    ack_timeout_s: float = 30.0
    drain_timeout_s: float = 15.0
    seed: int = 1
    rate_share: float = 1.0
    with_keys: bool = True
    soak: SoakPlan | None = None

    @property
    def needs_accounts(self) -> bool:
        return self.target == HUB

    @property
    def client_count(self) -> int:
        return 2 * len(self.pairs) + len(self.churner_urls) + len(self.idle_urls)


@dataclass(frozen=True)
class Segment:
    """From ``at_s`` seconds after the start, send at ``rate`` messages/s (all workers)."""

    at_s: float
    rate: float


def split_round_robin(count: int, workers: int, index: int) -> list[int]:
    return list(range(index, count, workers))
