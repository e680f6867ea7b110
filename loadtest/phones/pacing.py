"""The open-loop clock of one worker: fire the paced activities on schedule, then drain.

Open loop: message k of a segment is due at segment start + k / rate and is sent then, acked or
not, so a slow hub shows as latency and loss rather than as a politely lower rate. A late
driver sends its backlog at once and shows as schedule lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from loadtest.phones.world import NS, World
from loadtest.plan import Segment


async def send_open_loop(
    world: World,
    start_ns: int,
    segments: list[Segment],
    duration_s: float,
    rate_share: float,
    halted: asyncio.Event,
) -> None:
    """Every segment's share of the rate until ``duration_s`` (or the parent's halt)."""
    end_ns = start_ns + int(duration_s * NS)
    bounds = [start_ns + int(s.at_s * NS) for s in segments] + [end_ns]
    for number, segment in enumerate(segments):
        seg_start, seg_end = bounds[number], min(bounds[number + 1], end_ns)
        rate = segment.rate * rate_share
        if rate <= 0 or seg_start >= seg_end:
            continue
        if not await send_segment(world, seg_start, seg_end, NS / rate, halted):
            return
    remaining = (end_ns - time.monotonic_ns()) / NS
    if remaining > 0 and not halted.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halted.wait(), remaining)


async def send_segment(
    world: World, seg_start: int, seg_end: int, interval: float, halted: asyncio.Event
) -> bool:
    """One segment at one rate; False when halted."""
    paced = [a for a in world.activities if a.paced]
    weights = [a.weight for a in paced]
    single = paced[0] if len(paced) == 1 else None
    stats = world.stats
    rng = world.rng
    k = 0
    while True:
        if halted.is_set():
            return False
        due = seg_start + int(k * interval)
        if due >= seg_end:
            return True
        now = time.monotonic_ns()
        if due > now:
            # the loop's timers have 1 ms resolution: a shorter sleep would spin
            await asyncio.sleep(max(0.001, (due - now) / NS))
            continue
        lag_ms = (now - due) / 1e6
        if lag_ms > stats.max_lag_ms:
            stats.max_lag_ms = lag_ms
        # everything due by now, in order, without yielding
        while due <= now and due < seg_end:
            activity = single or rng.choices(paced, weights)[0]
            activity.fire(world, due)
            k += 1
            due = seg_start + int(k * interval)
        await asyncio.sleep(0)


async def drain(world: World, timeout_s: float) -> None:
    """Wait for outstanding acks, deliveries and receipts, up to the drain timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(a.busy() for a in world.activities):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # a last look for late duplicates
