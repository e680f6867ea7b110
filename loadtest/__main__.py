"""``python -m loadtest run|step|idle|compare|soak``: see loadtest/README.md.

Exit status: 0 passed, 1 a target was missed, 2 the run itself failed (a server or a worker
died, or the options cannot work), 130 interrupted. Spawned servers are stopped on every exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from loadtest.cli import options_from, parse
from loadtest.model.run import RunResult
from loadtest.model.step import StepResult
from loadtest.modes.compare import compare
from loadtest.modes.idle import idle
from loadtest.modes.run import run
from loadtest.modes.soak import soak
from loadtest.modes.step import step
from loadtest.options import KillPlan, StepPlan, Targets
from loadtest.phones.worker import raise_fd_limit
from loadtest.plan import SoakPlan
from loadtest.report.files import Result, default_out, render, save, save_comparison
from loadtest.report.text import render_compare
from loadtest.session.failure import RunFailed


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    raise_fd_limit()

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        return dispatch(args)
    except ValueError as exc:
        print(f"\n{exc}", file=sys.stderr, flush=True)
        return 2
    except RunFailed as exc:
        print(f"\nrun failed: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr, flush=True)
        return 130


def dispatch(args: argparse.Namespace) -> int:
    result: Result
    if args.command == "run":
        targets = Targets(
            args.expect_rate, args.expect_p99_ms, args.expect_loss, args.expect_errors
        )
        result = run(options_from(args, rate=args.rate, duration=args.duration), targets)
    elif args.command == "step":
        plan = StepPlan(args.start, args.step, args.max, args.step_seconds, args.p99_ms)
        result = step(options_from(args), plan)
    elif args.command == "idle":
        result = idle(options_from(args), args.hold)
    elif args.command == "compare":
        return run_compare(args)
    elif args.command == "soak":
        result = run_soak(args)
    else:
        return 2
    finish(result, args)
    return 0 if result.passed else 1


def finish(result: Result, args: argparse.Namespace, out: Path | None = None) -> None:
    """Print the result's table, write its files, say where."""
    print(render(result), flush=True)
    folder = out or args.out or default_out(result.header.kind, result.header.target)
    written = save(result, folder, chart=not args.no_chart)
    print("  wrote " + ", ".join(str(p) for p in written), flush=True)


def run_soak(args: argparse.Namespace) -> Result:
    hub_env = {"DEVICE_TTL_SECONDS": str(args.device_ttl), **dict(args.hub_env)}
    options = options_from(
        args,
        rate=args.rate,
        duration=args.duration,
        ack_timeout=args.ack_timeout,
        hub_env=hub_env,
    )
    phones = SoakPlan(
        reconnect_attempts=args.reconnect_attempts,
        resend_attempts=args.resend_attempts,
        final_sync_timeout_s=args.final_sync_timeout,
    )
    return soak(options, phones, KillPlan(every_s=args.kill_every, down_s=args.down_for))


def run_compare(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    base = args.out or default_out("compare", "all")
    plan = (
        StepPlan(args.start, args.step_size, args.max, args.step_seconds, args.p99_ms)
        if args.compare_step
        else None
    )

    def publish(target: str, result: RunResult | StepResult) -> None:
        finish(result, args, base / target)

    options = options_from(args, rate=args.rate, duration=args.duration)
    comparison = compare(options, targets, plan, publish)
    print(render_compare(comparison), flush=True)
    path = save_comparison(comparison, base)
    print(f"  wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
