"""One hub node (and its own database and Redis prefix) shared by every test of a module,
for modules whose tests only add users of their own and never stop the hub: starting a node
per test would cost more than the tests themselves."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from tests.conftest import Servers, TestEnv
from tests.support import HubNode, start_hub_node


async def private_env(servers: Servers) -> TestEnv:
    """What the ``test_env`` fixture gives a test, for a wider scope."""
    database = servers.template_db.replace("template", "db") + "_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(servers.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{servers.template_db}"')
    finally:
        await admin.close()
    return TestEnv(
        servers=servers,
        database_url=servers.dsn_for(database),
        redis_prefix=f"test-{uuid.uuid4().hex[:10]}",
        jwt_secret=uuid.uuid4().hex + uuid.uuid4().hex,
    )


@asynccontextmanager
async def shared_hub(servers: Servers, **env: str) -> AsyncIterator[tuple[TestEnv, HubNode]]:
    """A node on a private database, stopped on exit; its log stays readable until then."""
    test_env = await private_env(servers)
    data_dir = Path(tempfile.mkdtemp(prefix="hub-module-"))
    node = await start_hub_node(test_env.hub_env(**env), data_dir / "node", "node-m")
    try:
        yield test_env, node
    finally:
        await node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
