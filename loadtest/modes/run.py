"""``run``: a fixed open-loop rate for a duration, judged against ``--expect-*`` targets.

The p99 targets count a message that never got its ack (or delivery) as infinitely late, so a
hub that drops a few percent cannot pass on the latency of the rest.
"""

from __future__ import annotations

from loadtest.fleet import FakeProvider
from loadtest.model.common import Check, MessageTotals, finite
from loadtest.model.push import PushResult
from loadtest.model.run import Connections, RunLatency, RunRates, RunResult
from loadtest.options import Options, Targets
from loadtest.plan import Segment
from loadtest.session.push_probe import QueueDepthProbe, push_result
from loadtest.session.resources import cpu_per_message
from loadtest.session.session import Session
from loadtest.stats import p99_with_missing, summary


def run(options: Options, targets: Targets) -> RunResult:
    with Session(options, "run") as session:
        session.setup()
        session.progress.say(
            f"sending {options.rate:g} messages/s for {options.duration:g} s "
            f"(open loop, mix {options.effective_mix().name})…"
        )
        segments = [Segment(0.0, options.rate)]
        provider = session.servers.provider if session.servers is not None else None
        push = None
        # --push-provider without the push mix measures what a provider costs the hub when
        # nobody holds a token: no probe polls its metrics, no push is waited for.
        if provider is None or not options.effective_mix().pushes:
            session.drive(segments, options.duration)
        else:
            with QueueDepthProbe(session.urls[0]) as probe:
                session.drive(segments, options.duration)
            push = collect_pushes(session, provider, probe)
        result = evaluate(session, targets, push)
        session.finish()
    return result


def collect_pushes(session: Session, provider: FakeProvider, probe: QueueDepthProbe) -> PushResult:
    assert session.schedule is not None
    session.progress.say("waiting for the last pushes at the fake FCM…")
    mix = session.options.effective_mix()
    return push_result(
        provider,
        session.replies.direct_tallies(),
        probe,
        session.urls,
        session.schedule.start_ns,
        session.schedule.duration_s,
        offline_recipients=sum(1 for i in range(session.population.pairs) if mix.offline(i)),
    )


def evaluate(session: Session, targets: Targets, push: PushResult | None = None) -> RunResult:
    assert session.schedule is not None and session.setup_info is not None
    totals, _ = session.message_totals()
    duration = session.schedule.duration_s
    collected = session.collected
    ack_ms = collected.ack.latencies()
    e2e_ms = collected.e2e.latencies()
    sent = totals.sent
    resources = session.resources(0.5, duration + 0.5)
    info = session.setup_info
    checks = expectations(session, totals, duration, targets) + push_checks(push)
    return RunResult(
        header=session.header(),
        duration_s=duration,
        rate=RunRates(
            target=session.schedule.first_rate(),
            sent_per_s=round(sent / duration, 1),
            acked_per_s=round(totals.acked / duration, 1),
            delivered_per_s=round(totals.delivered / duration, 1),
        ),
        totals=totals,
        latency_ms=RunLatency(
            ack=summary(ack_ms),
            delivery=summary(e2e_ms),
            receipt_and_typing_ack=summary(collected.other_ack_values()),
            ack_p99_counting_missing=finite(p99_with_missing(ack_ms, sent)),
            delivery_p99_counting_missing=finite(p99_with_missing(e2e_ms, totals.acked)),
        ),
        errors=dict(collected.errors),
        setup_errors=dict(session.replies.setup_errors),
        extras=collected.extras(),
        connections=Connections(
            clients=info.clients,
            at_start=info.connected_at_start,
            at_end=totals.connected_at_end,
            disconnects=collected.counters.get("disconnects", 0),
        ),
        resources=resources,
        cpu_us_per_message=cpu_per_message(resources, sent / duration),
        timeline=session.timeline.rows,
        expectations=checks,
        passed=all(c.passed for c in checks),
        push=push,
    )


def push_checks(push: PushResult | None) -> list[Check]:
    """The push mix always checks that no offline phone was left without its last message's
    push, and that the hub spoke to the provider as FCM requires."""
    if push is None:
        return []
    return [
        Check(
            "offline conversations whose last message was never pushed",
            0,
            push.last_not_pushed,
            push.last_not_pushed == 0,
        ),
        Check(
            "provider refusals (401, bad requests)",
            0,
            push.unauthorized + len(push.problems),
            push.unauthorized == 0 and not push.problems,
        ),
    ]


def expectations(
    session: Session, totals: MessageTotals, duration: float, targets: Targets
) -> list[Check]:
    """The ``--expect-*`` checks that were asked for, in the order the report prints them."""
    ack_ms = session.collected.ack.latencies()
    e2e_ms = session.collected.e2e.latencies()
    checks: list[Check] = []
    if targets.rate is not None:
        achieved = totals.acked / duration
        checks.append(
            Check(
                "rate (acked/s ≥ 98% of target)",
                targets.rate,
                achieved,
                achieved >= 0.98 * targets.rate,
            )
        )
    if targets.p99_ms is not None:
        ack99 = p99_with_missing(ack_ms, totals.sent)
        e2e99 = p99_with_missing(e2e_ms, totals.sent)
        checks.append(
            Check("ack p99 ms", targets.p99_ms, finite(ack99), bool(ack99 <= targets.p99_ms))
        )
        checks.append(
            Check("delivery p99 ms", targets.p99_ms, finite(e2e99), bool(e2e99 <= targets.p99_ms))
        )
    if targets.loss is not None:
        lost = totals.lost + totals.unacked
        checks.append(Check("lost + unacked", targets.loss, lost, lost <= targets.loss))
    if targets.errors is not None:
        count = sum(session.collected.errors.values())
        checks.append(Check("errors", targets.errors, count, count <= targets.errors))
    return checks
