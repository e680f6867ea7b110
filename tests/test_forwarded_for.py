"""X-Forwarded-For over a real hub: honoured only from a trusted proxy (TRUSTED_PROXIES), so
per-IP login limits count each client behind a balancer, not the balancer."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.support import Api, start_hub_node
from tests.support.clients import PASSWORD


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


async def test_failures_from_one_address_do_not_lock_the_account_elsewhere(
    test_env: Any, tmp_path: Path
) -> None:
    env = test_env.hub_env(
        TRUSTED_PROXIES="127.0.0.1",
        LOGIN_ATTEMPTS_PER_ACCOUNT="3",
        LOGIN_FAILURES_PER_ACCOUNT="5",
        LOGIN_ATTEMPTS_PER_IP="50",
    )
    node = await start_hub_node(env, tmp_path / "node-a", "node-a")
    try:
        api = Api(node.url)
        owner = await api.register("owner")

        async def login(password: str, address: str) -> int:
            status, _ = await api.request(
                "POST",
                "/api/auth/login",
                json={"email": owner.email, "password": password},
                headers={"X-Forwarded-For": address},
            )
            return status

        assert [await login("guess", "203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
        assert await login(PASSWORD, "198.51.100.20") == 200, "the owner elsewhere is not locked"
        assert await login("typo", "198.51.100.20") == 401
        assert await login(PASSWORD, "198.51.100.20") == 200, "a success resets its address"
        # A distributed guess still hits the account-wide cap (5 failures in all).
        assert await login("guess", "192.0.2.1") == 401
        assert await login(PASSWORD, "192.0.2.2") == 429
    finally:
        await node.stop()
