"""The PostgreSQL and Redis the tests run on, and each test's private database and key prefix."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from storage.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.sql.db import apply_migrations


@dataclass(frozen=True)
class Servers:
    admin_dsn: str
    redis_url: str
    template_db: str

    def dsn_for(self, database: str) -> str:
        return replace_database(self.admin_dsn, database)


def replace_database(dsn: str, database: str) -> str:
    """Swap the database name in a postgresql:// URL (with or without a ?host= socket)."""
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}{sep}{query}"


async def _skip_disk_flushes(admin_dsn: str) -> None:
    """A throwaway test server need not survive a power cut: no fsync makes each test's
    CREATE DATABASE and every commit cheap. (The hub's own embedded server keeps fsync.)"""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute("ALTER SYSTEM SET fsync = off")
        await admin.execute("ALTER SYSTEM SET synchronous_commit = off")
        await admin.execute("ALTER SYSTEM SET full_page_writes = off")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


async def _create_template(admin_dsn: str, template: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{template}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(replace_database(admin_dsn, template))
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


async def _drop_databases(admin_dsn: str, template: str) -> None:
    prefix = template.replace("template", "db")
    admin = await asyncpg.connect(admin_dsn)
    try:
        names = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "%"
        )
        for row in [*names, {"datname": template}]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass(frozen=True)
class TestEnv:
    """One test's private database and Redis prefix, and how to start hub nodes on them."""

    __test__ = False  # a fixture's value, not a test class (its name starts with Test)

    servers: Servers
    database_name: str
    database_url: str
    redis_prefix: str
    jwt_secret: str

    def hub_env(self, **extra: str) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.servers.redis_url,
            "REDIS_PREFIX": self.redis_prefix,
            "JWT_SECRET": self.jwt_secret,
            "BCRYPT_ROUNDS": "4",
            "API_RATE_LIMIT": "off",
            "HUB_LOG_LEVEL": "WARNING",
        }
        env.update(extra)
        return env


@contextmanager
def running_servers(database_url: str | None, redis_url: str | None) -> Iterator[Servers]:
    """The given servers, or embedded ones started for the session (and stopped after), with
    a migrated template database every test's own database is copied from."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    # Not under pytest's basetemp: pytest prunes old basetemps, and a second pytest session
    # starting meanwhile would delete this session's live PostgreSQL data folder.
    data = Path(tempfile.mkdtemp(prefix="hub-test-servers-"))
    try:
        if not database_url:
            postgres = EmbeddedPostgres(data / "postgres")
            started.append(postgres)
            postgres.start()
            database_url = postgres.admin_url()
            asyncio.run(_skip_disk_flushes(database_url))
        if not redis_url:
            redis = EmbeddedRedis(data / "redis")
            started.append(redis)
            redis_url = redis.start()
        template = f"hubtest_template_{uuid.uuid4().hex[:8]}"
        asyncio.run(_create_template(database_url, template))
        try:
            yield Servers(database_url, redis_url, template)
        finally:
            asyncio.run(_drop_databases(database_url, template))
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(data, ignore_errors=True)


async def new_test_env(servers: Servers) -> TestEnv:
    """A private database (a copy of the migrated template), Redis prefix and secret: what
    one test, or one module sharing a hub, runs on."""
    database = servers.template_db.replace("template", "db") + "_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(servers.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{servers.template_db}"')
    finally:
        await admin.close()
    return TestEnv(
        servers=servers,
        database_name=database,
        database_url=servers.dsn_for(database),
        redis_prefix=f"test-{uuid.uuid4().hex[:10]}",
        jwt_secret=uuid.uuid4().hex + uuid.uuid4().hex,
    )


async def drop_test_env(env: TestEnv) -> None:
    """Drop the test's database as it ends, so the session's end does not drop hundreds at
    once (that once outlasted pytest-timeout on a loaded machine)."""
    admin = await asyncpg.connect(env.servers.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{env.database_name}" WITH (FORCE)')
    finally:
        await admin.close()
