"""The command line of ``python -m loadtest``: every flag of every command, as documented in
loadtest/README.md, and the ``Options`` each command's flags make.

Only parsing lives here; ``__main__`` runs the command and owns the exit codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TypeAlias

from loadtest.options import Options
from loadtest.plan import HUB, TARGETS


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("use KEY=VALUE")
    return key, value


def common(parser: argparse.ArgumentParser, clients: int) -> None:
    """The flags every command has; ``clients`` is the command's default --clients."""
    target_flags(parser)
    load_flags(parser, clients)
    output_flags(parser)


def target_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("target")
    where.add_argument(
        "--target",
        choices=TARGETS,
        default=HUB,
        help="the hub, or a minimal relay to compare with (default hub)",
    )
    where.add_argument(
        "--hub-url",
        action="append",
        default=[],
        metavar="URL",
        help="an already running target (repeat for several hub nodes); "
        "without it the kit starts its own",
    )
    where.add_argument(
        "--spawn-hubs",
        type=int,
        default=1,
        metavar="N",
        help="hub nodes to start when no --hub-url is given (default 1)",
    )
    where.add_argument(
        "--hub-pid",
        action="append",
        type=int,
        default=[],
        metavar="PID",
        help="pid of an external target process, to report its CPU and RSS",
    )
    where.add_argument(
        "--hub-env",
        action="append",
        type=_env_pair,
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for spawned hubs",
    )
    where.add_argument(
        "--push-provider",
        action="store_true",
        help="configure spawned hubs with the local fake FCM whatever the mix (what a "
        "provider costs when nobody holds a token; the push mix always has it)",
    )
    where.add_argument(
        "--keep",
        action="store_true",
        help="keep the spawned servers' temporary folder (logs, data)",
    )


def load_flags(parser: argparse.ArgumentParser, clients: int) -> None:
    load = parser.add_argument_group("load")
    load.add_argument(
        "--clients", type=int, default=clients, help=f"phones (sockets) to open (default {clients})"
    )
    load.add_argument(
        "--mix",
        choices=("chat", "dm", "push"),
        default="chat",
        help="chat: messages + receipts + typing + presence churn; dm: messages "
        "only; push (run only): half the recipients offline, reached through pushes to a "
        "local fake FCM (default chat; relays always dm)",
    )
    load.add_argument("--workers", type=int, default=2, help="driver processes (default 2)")
    load.add_argument(
        "--client",
        dest="client_kind",
        choices=("raw", "sio"),
        default="raw",
        help="raw Engine.IO framing over aiohttp (default) or python-socketio",
    )
    load.add_argument(
        "--placement",
        choices=("split", "cross"),
        default="split",
        help="with several hubs: senders on the first half, recipients on the "
        "rest (split, default) or each pair across two neighbours (cross)",
    )
    load.add_argument("--register-concurrency", type=int, default=16)
    load.add_argument("--connect-concurrency", type=int, default=50)
    load.add_argument(
        "--drain",
        dest="drain_timeout",
        type=float,
        default=15.0,
        help="seconds to wait for outstanding acks and deliveries (default 15)",
    )
    load.add_argument("--seed", type=int, default=1)


def output_flags(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        help="folder for report.json and chart.png "
        "(default loadtest/results/<kind>-<target>-<time>)",
    )
    out.add_argument("--no-chart", action="store_true")
    out.add_argument("--quiet", action="store_true", help="no progress lines")


def options_from(args: argparse.Namespace, **overrides: Any) -> Options:
    """The session options from the common flags; a command adds or overrides some."""
    values = dict(
        target=args.target,
        hub_urls=args.hub_url,
        spawn_hubs=args.spawn_hubs,
        hub_pids=args.hub_pid,
        hub_env=dict(args.hub_env),
        push_provider=args.push_provider,
        clients=args.clients,
        mix=args.mix,
        workers=args.workers,
        client_kind=args.client_kind,
        placement=args.placement,
        register_concurrency=args.register_concurrency,
        connect_concurrency=args.connect_concurrency,
        drain_timeout=args.drain_timeout,
        seed=args.seed,
        quiet=args.quiet,
        keep=args.keep,
    )
    values.update(overrides)
    return Options(**values)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest", description="Load tests for the Artist Space hub, over the wire."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run(commands)
    add_step(commands)
    add_idle(commands)
    add_compare(commands)
    add_soak(commands)
    args = parser.parse_args(argv)
    if args.command == "soak" and args.mix != "dm":
        parser.error("soak drives direct messages only (--mix dm)")
    if args.mix == "push":
        if args.command != "run" or args.target != "hub":
            parser.error("--mix push is for run against the hub")
        if args.hub_url:
            parser.error("--mix push needs hubs the kit starts (it points their FCM at its fake)")
    if args.push_provider and args.hub_url:
        parser.error("--push-provider is for hubs the kit starts (it points their FCM at its fake)")
    return args


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_run(commands: Commands) -> None:
    p = commands.add_parser("run", help="a fixed open-loop rate for a duration")
    common(p, 2000)
    p.add_argument("--rate", type=float, default=1000, help="messages/s (default 1000)")
    p.add_argument("--duration", type=float, default=60, help="seconds (default 60)")
    p.add_argument("--expect-rate", type=float, help="fail unless acked/s ≥ 98%% of this")
    p.add_argument(
        "--expect-p99-ms",
        type=float,
        help="fail unless ack and delivery p99 ≤ this (missing samples count as ∞)",
    )
    p.add_argument("--expect-loss", type=int, help="fail if lost + unacked > this")
    p.add_argument("--expect-errors", type=int, help="fail if errors > this")


def add_step(commands: Commands) -> None:
    p = commands.add_parser("step", help="raise the rate until p99 or loss fails")
    common(p, 2000)
    p.add_argument("--start", type=float, default=500)
    p.add_argument("--step", type=float, default=500)
    p.add_argument("--max", type=float, default=8000)
    p.add_argument("--step-seconds", type=int, default=20)
    p.add_argument("--p99-ms", type=float, default=100)


def add_idle(commands: Commands) -> None:
    p = commands.add_parser("idle", help="N idle connections: server RSS per connection")
    common(p, 10000)
    p.add_argument("--hold", type=float, default=10, help="seconds to hold them (default 10)")


def add_compare(commands: Commands) -> None:
    p = commands.add_parser("compare", help="the same load on node-relay, python-relay, hub")
    common(p, 2000)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument(
        "--step",
        dest="compare_step",
        action="store_true",
        help="compare highest sustained rates (step mode) instead of one rate",
    )
    p.add_argument("--start", type=float, default=500)
    p.add_argument("--step-size", type=float, default=500)
    p.add_argument("--max", type=float, default=8000)
    p.add_argument("--step-seconds", type=int, default=20)
    p.add_argument("--p99-ms", type=float, default=100)
    p.add_argument(
        "--targets",
        default="node-relay,python-relay,hub",
        help="comma-separated, hub last (default node-relay,python-relay,hub)",
    )


def add_soak(commands: Commands) -> None:
    p = commands.add_parser(
        "soak", help="a long run while hub nodes are killed (-9) and restarted: nothing is lost"
    )
    common(p, 1000)
    p.set_defaults(spawn_hubs=2, mix="dm", placement="cross", drain_timeout=30.0)
    p.add_argument("--rate", type=float, default=500, help="messages/s (default 500)")
    p.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    p.add_argument(
        "--kill-every", type=float, default=60, help="kill -9 one node every S s (default 60)"
    )
    p.add_argument("--down-for", type=float, default=10, help="restart it after S s (default 10)")
    p.add_argument(
        "--device-ttl",
        type=int,
        default=10,
        help="DEVICE_TTL_SECONDS of the spawned hubs: a dead node's devices go offline "
        "after it (default 10)",
    )
    p.add_argument(
        "--ack-timeout",
        type=float,
        default=10,
        help="resend (same id) a message not acked after S s on a live socket (default 10)",
    )
    p.add_argument(
        "--reconnect-attempts", type=int, default=12, help="per dropped socket (default 12)"
    )
    p.add_argument(
        "--resend-attempts", type=int, default=5, help="writes of a message beyond the first"
    )
    p.add_argument(
        "--final-sync-timeout",
        type=float,
        default=180,
        help="seconds for every recipient's final full sync (default 180)",
    )
