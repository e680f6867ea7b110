"""``step``: one population through rising rates until a step fails; the highest rate below it
is the "highest sustained rate".

A step is judged on the messages *sent* in it (missing acks and deliveries count as ∞), once
``grace_s`` after it ended so its last acks are in; the first failing step halts the drive, so
the hub is not pushed further into overload than it takes to find the limit.
"""

from __future__ import annotations

from loadtest.model.common import finite
from loadtest.model.step import StepResult, StepVerdict
from loadtest.options import Options, StepPlan
from loadtest.plan import Segment
from loadtest.session.resources import cpu_per_message
from loadtest.session.session import DriveHooks, Session
from loadtest.stats import fmt_ms, p99_with_missing, summary


def step(options: Options, plan: StepPlan) -> StepResult:
    rates = plan.rates()
    if not rates:
        raise ValueError("no step: --start is above --max")
    segments = [Segment(i * plan.step_seconds, r) for i, r in enumerate(rates)]
    duration = len(rates) * plan.step_seconds
    with Session(options, "step") as session:
        session.setup()
        session.progress.say(
            f"stepping {rates[0]:g} → {rates[-1]:g} messages/s, {plan.step_seconds} s each, "
            f"until p99 > {plan.p99_ms:g} ms or loss (mix {options.effective_mix().name})…"
        )
        live = LiveJudge(session, plan, rates)
        session.drive(segments, duration, DriveHooks(on_second=live.on_second))
        result = evaluate(session, plan, rates, duration)
        session.finish()
    return result


class LiveJudge:
    """Judges each step while the drive goes on, and halts it at the first failure."""

    def __init__(self, session: Session, plan: StepPlan, rates: list[float]) -> None:
        self.session = session
        self.plan = plan
        self.rates = rates
        self.judged: set[int] = set()

    def on_second(self, t: int) -> None:
        plan, rates = self.plan, self.rates
        number = (t - plan.grace_s) // plan.step_seconds - 1
        if (
            number >= 0
            and number not in self.judged
            and (t - plan.grace_s) % plan.step_seconds == 0
            and number < len(rates)
        ):
            verdict = judge(self.session, number, rates[number], plan, [])
            self.judged.add(number)
            mark = "PASS" if verdict.passed else f"FAIL ({verdict.why})"
            self.session.progress.say(f"  step {rates[number]:g}/s: {mark}")
            if not verdict.passed:
                self.session.halt()


def evaluate(session: Session, plan: StepPlan, rates: list[float], duration: int) -> StepResult:
    """Every step that ran in full, judged again with the workers' final loss counts."""
    totals, lost_seconds = session.message_totals()
    last_sent = session.collected.last_sent_second()
    steps = []
    for number, rate in enumerate(rates):
        if number * plan.step_seconds >= last_sent + 1:
            break
        if (number + 1) * plan.step_seconds > session.halted_at_s:
            break  # cut short by the halt after the step before it failed
        steps.append(judge(session, number, rate, plan, lost_seconds))
    sustained = 0.0
    for verdict in steps:
        if not verdict.passed:
            break
        sustained = verdict.rate
    return StepResult(
        header=session.header(),
        step=plan,
        steps=steps,
        highest_sustained_rate=sustained,
        bound_reached=any(not v.passed for v in steps),
        totals=totals,
        errors=dict(session.collected.errors),
        extras=session.collected.extras(),
        resources=session.resources(0.5, duration + 0.5),
        timeline=session.timeline.rows,
        passed=sustained > 0,
    )


def judge(
    session: Session, number: int, rate: float, plan: StepPlan, lost_seconds: list[float]
) -> StepVerdict:
    start, end = number * plan.step_seconds, (number + 1) * plan.step_seconds
    collected = session.collected
    sent = collected.sent_between(start, end)
    ack_ms = collected.ack.latencies(start, end)
    e2e_ms = collected.e2e.latencies(start, end)
    ack99 = p99_with_missing(ack_ms, sent)
    e2e99 = p99_with_missing(e2e_ms, sent)
    lost = sum(1 for s in lost_seconds if start <= s < end)
    rows = [r for r in session.timeline.rows if start < r.t <= end]
    send_errors = sum(
        n for r in rows for code, n in r.error_codes.items() if code.startswith("message:send")
    )
    resources = session.resources(start, end)
    reasons = []
    if sent < 0.97 * rate * plan.step_seconds:
        reasons.append(f"sent only {sent / plan.step_seconds:.0f}/s")
    if ack99 > plan.p99_ms:
        reasons.append(f"ack p99 {fmt_ms(ack99)} ms")
    if e2e99 > plan.p99_ms:
        reasons.append(f"delivery p99 {fmt_ms(e2e99)} ms")
    if lost:
        reasons.append(f"{lost} lost")
    if send_errors:
        reasons.append(f"{send_errors} send errors")
    ack = summary(ack_ms)
    e2e = summary(e2e_ms)
    return StepVerdict(
        rate=rate,
        from_s=start,
        to_s=end,
        sent=sent,
        sent_per_s=round(sent / plan.step_seconds, 1),
        acked=len(ack_ms),
        ack_p50=ack.p50,
        ack_p99=finite(ack99),
        e2e_p50=e2e.p50,
        e2e_p99=finite(e2e99),
        lost=lost,
        send_errors=send_errors,
        server_cpu_avg=resources.cpu_avg("server"),
        postgres_cpu_avg=resources.cpu_avg("postgres"),
        driver_cpu_avg=resources.cpu_avg("driver"),
        driver_max_lag_ms=resources.driver_max_lag_ms,
        other_cpu_avg=resources.cpu_avg("other"),
        cpu_us_per_message=cpu_per_message(resources, sent / plan.step_seconds),
        passed=not reasons,
        why=", ".join(reasons),
    )
