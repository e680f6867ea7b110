"""The REST rate limit (``API_RATE_LIMIT``): per user when authenticated, per IP otherwise,
counted in Redis so it holds across nodes; 429 with ``Retry-After``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.support import Api, start_hub_node


async def status_and_retry_after(url: str, token: str | None = None) -> tuple[int, str | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, response.headers.get("Retry-After")


async def test_the_limit_counts_per_user_and_per_ip_across_nodes(test_env, tmp_path: Path) -> None:
    env = test_env.hub_env(API_RATE_LIMIT="3/60")
    node_a, node_b = await asyncio.gather(
        start_hub_node(env, tmp_path / "a", "node-a"), start_hub_node(env, tmp_path / "b", "node-b")
    )
    try:
        api_a = Api(node_a.url)
        # Two anonymous requests from this IP (the registrations).
        alice = await api_a.register("alice", with_key=False)
        bob = await api_a.register("bob", with_key=False)
        for url in (node_a.url, node_b.url, node_a.url):  # Alice's 3, on both nodes
            assert (await status_and_retry_after(f"{url}/api/bands", alice.access_token))[0] == 200
        status, retry_after = await status_and_retry_after(
            f"{node_b.url}/api/bands", alice.access_token
        )
        assert status == 429 and retry_after is not None and 1 <= int(retry_after) <= 60
        status, body = await Api(node_b.url).request("GET", "/api/bands", token=alice.access_token)
        assert status == 429 and body["error"]["code"] == "rate_limited"
        # Bob, behind the same IP, has his own budget.
        assert (await status_and_retry_after(f"{node_b.url}/api/bands", bob.access_token))[0] == 200
        # The IP's third anonymous request passes (a bad token counts as anonymous), the fourth not.
        assert (await status_and_retry_after(f"{node_b.url}/api/bands", "not-a-jwt"))[0] == 401
        status, retry_after = await status_and_retry_after(f"{node_a.url}/api/openapi.json")
        assert status == 429 and retry_after is not None
        assert (await status_and_retry_after(f"{node_a.url}/healthz"))[0] == 200  # never limited
    finally:
        await asyncio.gather(node_a.stop(), node_b.stop())


async def test_the_limit_is_off_for_load_tests(hub_node) -> None:
    # tests/conftest.py starts every hub with API_RATE_LIMIT=off.
    statuses = [
        (await status_and_retry_after(f"{hub_node.url}/api/openapi.json"))[0] for _ in range(120)
    ]
    assert set(statuses) == {200}
