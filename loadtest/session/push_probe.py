"""The push mix's measurements outside the workers: the hub's push queue depth, read from
node 1's ``/metrics`` once a second while the schedule runs, and, after the drain, what the
fake FCM received, matched with the commits the senders saw acked.

The probe is a thread with a bounded life (stopped by the run, and every read has a 1 s
timeout), so the session's loop never waits on the hub's metrics endpoint.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import urllib.request
from collections import Counter
from types import TracebackType

import numpy as np

from loadtest.fleet import FakeProvider
from loadtest.model.push import PushResult, QueueDepth
from loadtest.pipe import DirectTally
from loadtest.stats import summary

NS = 1_000_000_000
DEPTH_LINE = re.compile(r"^hub_push_queue_depth (\S+)$", re.MULTILINE)
OUTCOME_LINE = re.compile(r'^hub_pushes_total\{[^}]*outcome="([a-z_]+)"[^}]*\} (\S+)$', re.M)
SETTLE_S = 30.0  # after the drain, how long the last coalesced pushes may take


def metrics_text(url: str, timeout: float = 1.0) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as response:
        return str(response.read().decode())


class QueueDepthProbe:
    """Samples ``hub_push_queue_depth`` of ``url`` each second until stopped."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="push-queue-probe", daemon=True)
        self.samples: list[tuple[int, int]] = []  # (monotonic ns, depth)

    def __enter__(self) -> QueueDepthProbe:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):  # a slow or busy node: no sample this second
                found = DEPTH_LINE.search(metrics_text(self._url))
                if found:
                    self.samples.append((time.monotonic_ns(), int(float(found.group(1)))))

    def depth(self, start_ns: int) -> QueueDepth:
        if not self.samples:
            return QueueDepth(None, None)
        values = [d for _, d in self.samples]
        return QueueDepth(
            max=max(values),
            mean=round(float(np.mean(values)), 1),
            by_second=[(round((t - start_ns) / NS, 1), d) for t, d in self.samples],
        )


def hub_outcomes(urls: list[str]) -> dict[str, int]:
    """``hub_pushes_total`` by outcome, summed over the nodes that answer."""
    out: Counter[str] = Counter()
    for url in urls:
        with contextlib.suppress(Exception):
            for outcome, value in OUTCOME_LINE.findall(metrics_text(url, timeout=5)):
                out[outcome] += int(float(value))
    return dict(out)


def last_messages(tallies: list[DirectTally]) -> dict[str, str]:
    """Per offline conversation (its sender), the id of the message committed last."""
    newest: dict[str, tuple[int, str]] = {}
    for tally in tallies:
        for message_id, sender, ts in tally.offline_commits:
            if sender not in newest or ts >= newest[sender][0]:
                newest[sender] = (ts, message_id)
    return {sender: message_id for sender, (_, message_id) in newest.items()}


def received(provider: FakeProvider, expected_last: set[str]) -> dict[str, object]:
    """The fake's stats once every conversation's last message was pushed, or ``SETTLE_S``
    after the drain, whichever comes first (a coalesced push waits out its window)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        stats: dict[str, object] = provider.get_json("/stats", timeout=10)
        pushes = stats.get("pushes")
        named = {p[1] for p in pushes} if isinstance(pushes, list) else set()
        if expected_last <= named or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


def push_result(
    provider: FakeProvider,
    tallies: list[DirectTally],
    probe: QueueDepthProbe,
    urls: list[str],
    start_ns: int,
    duration_s: float,
    *,
    offline_recipients: int,
) -> PushResult:
    last = last_messages(tallies)
    stats = received(provider, set(last.values()))
    commits = {m: ts for t in tallies for m, _, ts in t.offline_commits}
    start_wall_ms = time.time() * 1000 - (time.monotonic_ns() - start_ns) / 1e6
    latencies: list[float] = []
    by_second: Counter[int] = Counter()
    other: Counter[str] = Counter()
    named: set[str] = set()
    unmatched = 0
    raw = stats.get("pushes")
    for kind, message_id, _conversation, arrived_ms in raw if isinstance(raw, list) else ():
        if kind != "message":
            other[str(kind)] += 1
            continue
        named.add(message_id)
        by_second[int((arrived_ms - start_wall_ms) // 1000)] += 1
        committed = commits.get(message_id)
        if committed is None:
            unmatched += 1
        else:
            latencies.append(float(arrived_ms - committed))
    message_pushes = sum(by_second.values())
    during = sum(n for s, n in by_second.items() if 0 <= s < duration_s)
    offline_messages = sum(t.offline_acked for t in tallies)
    problems = stats.get("problems")
    return PushResult(
        provider="fcm: the kit's local fake (HTTP/2 over TLS, OAuth service account)",
        offline_recipients=offline_recipients,
        offline_messages=offline_messages,
        message_pushes=message_pushes,
        other_pushes=dict(other),
        pushes_per_s=round(during / duration_s, 1) if duration_s else 0.0,
        peak_per_s=max(by_second.values(), default=0),
        messages_per_push=round(offline_messages / message_pushes, 2) if message_pushes else 0.0,
        latency_ms=summary(latencies),
        unmatched=unmatched,
        conversations=len(last),
        last_not_pushed=sum(1 for m in last.values() if m not in named),
        hub_outcomes=hub_outcomes(urls),
        queue_depth=probe.depth(start_ns),
        token_requests=_int(stats.get("tokenRequests")),
        unauthorized=_int(stats.get("unauthorized")),
        problems=[str(p) for p in problems] if isinstance(problems, list) else [],
        pushes_by_second=dict(sorted(by_second.items())),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
