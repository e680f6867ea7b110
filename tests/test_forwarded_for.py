"""X-Forwarded-For over a real hub: honoured only from a trusted proxy (TRUSTED_PROXIES), so
per-IP login limits count each client behind a balancer, not the balancer."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.support import Api, start_hub_node


async def attempt(api: Api, forwarded: str) -> int:
    status, _ = await api.request(
        "POST",
        "/api/auth/login",
        json={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong"},
        headers={"X-Forwarded-For": forwarded},
    )
    return status


async def test_forwarded_for_is_the_client_only_behind_a_trusted_proxy(
    test_env: Any, tmp_path: Path
) -> None:
    for trusted, first, second in (
        ("127.0.0.0/8", "198.51.100.1", "198.51.100.2"),
        ("", "198.51.100.3", "198.51.100.4"),
    ):
        env = test_env.hub_env(TRUSTED_PROXIES=trusted, LOGIN_ATTEMPTS_PER_IP="2")
        node = await start_hub_node(env, tmp_path / f"node-{first}", "node-a")
        try:
            api = Api(node.url)
            assert [await attempt(api, first) for _ in range(3)] == [401, 401, 429]
            other = await attempt(api, f"{first}, {second}")
            if trusted:
                assert other == 401, "another client behind the proxy has its own count"
            else:
                assert other == 429, "an untrusted peer's header is ignored: one address"
        finally:
            await node.stop()
