"""Running the hub: embedded servers, health, metrics, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from tests.support import ROOT, Api, Phone, free_port


def processes_using(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline and "run_hub.py" not in cmdline:
            found.append(process)
    return found


async def test_hub_without_urls_runs_embedded_servers_and_leaves_nothing_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "var"
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
    }
    env.update({"HUB_PORT": str(port), "HUB_DATA_DIR": str(data_dir), "BCRYPT_ROUNDS": "4"})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run_hub.py"),
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                assert process.returncode is None, "the hub exited during start-up"
                try:
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            assert (await response.json())["checks"] == {
                                "postgres": True,
                                "redis": True,
                            }
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the hub did not become healthy in 60 s"
                await asyncio.sleep(0.2)
        assert (data_dir / "jwt.secret").stat().st_mode & 0o777 == 0o600
        account = await Api(url).register("solo")
        assert account.id
        assert processes_using(data_dir), "embedded PostgreSQL and Redis should be running"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert f"listening on http://127.0.0.1:{port}" in text
    assert "PostgreSQL: embedded" in text and "Redis: embedded" in text
    assert account.access_token not in text, "tokens must never reach the log"
    deadline = time.monotonic() + 10
    while processes_using(data_dir) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert processes_using(data_dir) == []


async def test_metrics_count_connections_events_and_errors(hub_node):
    api = Api(hub_node.url)
    alice = await api.register("alice")
    phone = await Phone(alice).connect(hub_node.url)
    try:
        await phone.call("message:sync", {"after": 0})
        await phone.call("message:sync", {"after": "zero"})
        async with aiohttp.ClientSession() as http, http.get(f"{hub_node.url}/metrics") as response:
            text = await response.text()
        assert response.status == 200
        assert "hub_connections 1.0" in text
        assert 'hub_socket_events_total{event="message:sync"} 2.0' in text
        assert 'hub_socket_errors_total{code="invalid_payload",event="message:sync"} 1.0' in text
        assert 'hub_ack_seconds_count{event="message:sync"} 2.0' in text
    finally:
        await phone.close()


async def test_unknown_route_and_bad_json_get_json_errors(hub_node):
    api = Api(hub_node.url)
    status, body = await api.request("GET", "/api/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{hub_node.url}/api/auth/login",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_payload"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_sigterm_drops_transports_so_clients_reconnect_and_exits_quickly(hub_node):
    api = Api(hub_node.url)
    alice = await api.register("alice")
    phone = Phone(alice)
    reasons: asyncio.Queue[str] = asyncio.Queue()

    @phone.client.on("disconnect")
    async def on_disconnect(reason: str = "") -> None:
        await reasons.put(reason)

    await phone.connect(hub_node.url)
    started = time.monotonic()
    hub_node.process.send_signal(signal.SIGTERM)
    reason = await asyncio.wait_for(reasons.get(), 10)
    assert reason == phone.client.reason.TRANSPORT_ERROR, reason  # not a server disconnect
    await asyncio.wait_for(hub_node.process.wait(), 10)
    assert time.monotonic() - started < 10
    assert hub_node.process.returncode == 0
