"""Real servers for every test: PostgreSQL and Redis (embedded unless ``DATABASE_URL`` and
``REDIS_URL`` are set), a fresh database and Redis key prefix per test, and hub nodes run as
``run_hub.py`` subprocesses on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support import HubNode, start_hub_node, two_nodes
from tests.support.servers import (
    Servers,
    TestEnv,
    drop_test_env,
    new_test_env,
    running_servers,
)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with running_servers(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")) as found:
        yield found


@pytest_asyncio.fixture
async def test_env(servers: Servers) -> AsyncIterator[TestEnv]:
    env = await new_test_env(servers)
    try:
        yield env
    finally:
        await drop_test_env(env)


@pytest_asyncio.fixture
async def hub_node(test_env: TestEnv, tmp_path: Path) -> AsyncIterator[HubNode]:
    node = await start_hub_node(test_env.hub_env(), tmp_path / "node-a", "node-a")
    try:
        yield node
    finally:
        await node.stop()


@pytest_asyncio.fixture
async def two_hub_nodes(
    test_env: TestEnv, tmp_path: Path
) -> AsyncIterator[tuple[HubNode, HubNode]]:
    env = test_env.hub_env(DEVICE_TTL_SECONDS="3")
    async with two_nodes(env, tmp_path) as (node_a, node_b):
        yield node_a, node_b
