"""``compare``: the same load (direct messages only) on each target in turn, the hub last, and
the hub's ratios to the minimal relays: what the hub's own work costs over bare Socket.IO.

Each target's result is published (printed and saved) as soon as it is done, so a comparison
cut short still leaves the targets it finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from loadtest.model.compare import CompareRow, Comparison
from loadtest.model.run import RunResult
from loadtest.model.step import StepResult
from loadtest.modes.run import run
from loadtest.modes.step import step
from loadtest.options import Options, StepPlan, Targets
from loadtest.plan import HUB

Publish = Callable[[str, RunResult | StepResult], None]


def compare(
    options: Options, targets: list[str], plan: StepPlan | None, publish: Publish
) -> Comparison:
    """A ``run`` per target (or a ``step`` run with ``plan``); ``--hub-url`` is for the hub
    only, the relays are always spawned."""
    rows = []
    for target in targets:
        print(f"\n######## {target}", flush=True)
        per_target = replace(
            options,
            target=target,
            mix="dm",
            hub_urls=[] if target != HUB else options.hub_urls,
        )
        result: RunResult | StepResult
        if plan is not None:
            result = step(per_target, plan)
            rows.append(step_row(target, result))
        else:
            result = run(per_target, Targets())
            rows.append(run_row(target, result))
        publish(target, result)
    mode = (
        "highest sustained rate"
        if plan is not None
        else f"{options.rate:g} msg/s for {options.duration:g} s"
    )
    return Comparison(mode, rows)


def step_row(target: str, result: StepResult) -> CompareRow:
    best = result.verdict_at(result.highest_sustained_rate)
    return CompareRow(
        target=target,
        rate=result.highest_sustained_rate,
        ack_p99=best.ack_p99 if best else None,
        e2e_p99=best.e2e_p99 if best else None,
        lost=result.totals.lost,
        server_cpu=best.server_cpu_avg if best else None,
    )


def run_row(target: str, result: RunResult) -> CompareRow:
    return CompareRow(
        target=target,
        rate=result.rate.acked_per_s,
        ack_p99=result.latency_ms.ack.p99,
        e2e_p99=result.latency_ms.delivery.p99,
        lost=result.totals.lost,
        server_cpu=result.resources.cpu_avg("server"),
    )
