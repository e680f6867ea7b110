"""The push mix's result: what the hub owed the offline phones, and what reached the provider.

Latency is from the hub's commit of the message a push names (its ack ``ts``) to the moment
the fake FCM received the push: enqueue, the stream, the worker, the provider call. A burst
in one conversation is coalesced into one push per ``PUSH_COALESCE_MS`` (default 3 s) naming
the burst's last message, so that window is part of what the percentiles show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.model.common import Latency


@dataclass(frozen=True)
class QueueDepth:
    """``hub_push_queue_depth`` as node 1's ``/metrics`` said it, once a second."""

    max: int | None
    mean: float | None
    by_second: list[tuple[float, int]] = field(default_factory=list)  # (s since start, depth)


@dataclass(frozen=True)
class PushResult:
    provider: str
    offline_recipients: int
    offline_messages: int  # acked by the hub to recipients that never connected
    message_pushes: int  # message pushes the fake received
    other_pushes: dict[str, int]  # by type: badge, …
    pushes_per_s: float  # message pushes received during the schedule, per second
    peak_per_s: int
    messages_per_push: float  # offline messages / message pushes: the coalescing
    latency_ms: Latency  # commit of the named message → received by the fake
    unmatched: int  # message pushes naming no message a sender saw acked
    conversations: int  # offline conversations that got any message
    last_not_pushed: int  # of those, how many never got a push of their last message
    hub_outcomes: dict[str, int]  # hub_pushes_total by outcome, summed over the nodes
    queue_depth: QueueDepth
    token_requests: int
    unauthorized: int
    problems: list[str]
    pushes_by_second: dict[int, int]
