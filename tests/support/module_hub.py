"""One hub node (and its own database and Redis prefix) shared by every test of a module,
for modules whose tests only add users of their own and never stop the hub: starting a node
per test would cost more than the tests themselves."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support import HubNode, start_hub_node
from tests.support.servers import Servers, TestEnv, drop_test_env, new_test_env


@asynccontextmanager
async def shared_hub(servers: Servers, **env: str) -> AsyncIterator[tuple[TestEnv, HubNode]]:
    """A node on a private database, stopped on exit; its log stays readable until then."""
    test_env = await new_test_env(servers)
    data_dir = Path(tempfile.mkdtemp(prefix="hub-module-"))
    node = await start_hub_node(test_env.hub_env(**env), data_dir / "node", "node-m")
    try:
        yield test_env, node
    finally:
        await node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        await drop_test_env(test_env)
