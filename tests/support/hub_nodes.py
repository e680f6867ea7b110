"""Hub nodes as real `run_hub.py` processes on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

import hub.app  # noqa: F401  (loads every views module, so PUSHED_EVENTS is complete)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class HubNode:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def kill(self) -> None:
        """``kill -9``: no goodbye to Redis, its devices must time out."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def start_hub_node(env: dict[str, str], data_dir: Path, name: str) -> HubNode:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / "hub.log"
    full_env = {**os.environ, **env, "HUB_PORT": str(port), "HUB_DATA_DIR": str(data_dir)}
    full_env["HUB_NODE_ID"] = f"{name}-{uuid.uuid4().hex[:6]}"
    with open(log_path, "wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run_hub.py"),
            env=full_env,
            cwd=str(ROOT),
            stdout=log_file,
            stderr=log_file,
        )
    node = HubNode(name, port, process, log_path)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"hub {name} exited at start:\n{node.log()}")
            try:
                async with http.get(f"{node.url}/healthz") as response:
                    if response.status == 200:
                        return node
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                await node.kill()
                raise RuntimeError(f"hub {name} not ready in 30 s:\n{node.log()}")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def two_nodes(env: dict[str, str], folder: Path) -> AsyncIterator[tuple[HubNode, HubNode]]:
    """Two nodes of one hub (``node-a``, ``node-b`` under ``folder``), started together and
    stopped together."""
    node_a, node_b = await asyncio.gather(
        start_hub_node(env, folder / "node-a", "node-a"),
        start_hub_node(env, folder / "node-b", "node-b"),
    )
    try:
        yield node_a, node_b
    finally:
        await asyncio.gather(node_a.stop(), node_b.stop())
