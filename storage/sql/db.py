"""The PostgreSQL pool and the migrations that shape its schema.

Migrations are plain numbered ``.sql`` files applied in order, each in its own transaction,
under an advisory lock so several nodes starting at once apply each exactly once.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 0x4855_4221  # "HUB!": any constant shared by every node

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED_MIGRATIONS = "SELECT version FROM schema_migrations"
INSERT_APPLIED_MIGRATION = "INSERT INTO schema_migrations (version) VALUES ($1)"


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) for every migration shipped with the package, in order."""
    folder = resources.files("storage.sql") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(name.removesuffix(".sql"), sql) for name, sql in files]


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database lacks; returns the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(CREATE_MIGRATIONS_TABLE)
        done = {row["version"] for row in await conn.fetch(SELECT_APPLIED_MIGRATIONS)}
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(INSERT_APPLIED_MIGRATION, version)
            applied_now.append(version)
            log.info("applied migration %s", version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The hub never changes session state (no SET, LISTEN or held advisory locks outside
    migrations), so the default reset query on every release is a wasted round trip.
    asyncpg still rolls back any transaction left open before calling this."""


async def open_pool(dsn: str, *, min_size: int, max_size: int) -> asyncpg.Pool:
    """A pool whose connections drop idle sessions quickly and never hang a request forever."""
    server_settings: dict[str, Any] = {
        "application_name": "artist-space-hub",
        "idle_in_transaction_session_timeout": "30000",
    }
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=15,
        timeout=10,
        server_settings=server_settings,
        reset=_keep_session,
    )
    assert pool is not None
    return pool
