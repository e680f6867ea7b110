"""Sessions (one login of one device, and its refresh family), devices and refresh tokens.

Every write that changes a session's fate (rotation, revocation, binding its device) takes
the session's row lock first, so a revocation that races with a rotation also removes the
successor the rotation inserted: the two are ordered, never interleaved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from storage.failures import translates_failures


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a login says of its device."""

    id: str
    name: str | None
    platform: str | None


@dataclass(frozen=True, slots=True)
class DeviceRow:
    user_id: str
    id: str
    name: str | None
    platform: str
    created_at: int
    last_seen_at: int | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: str
    device_id: str | None
    auth_time: int


@dataclass(frozen=True, slots=True)
class RevokedSession:
    id: str
    user_id: str
    device_id: str | None


@dataclass(frozen=True, slots=True)
class OpenedSession:
    device: DeviceRow | None
    # Earlier sessions of the same device, revoked by this login.
    replaced: list[RevokedSession]


RotateOutcome = Literal["rotated", "grace", "unknown", "expired", "reused", "revoked"]


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: RotateOutcome
    session: SessionRow | None = None
    revoked: RevokedSession | None = None


BindOutcome = Literal["bound", "same", "mismatch", "revoked"]


@dataclass(frozen=True, slots=True)
class Binding:
    outcome: BindOutcome
    replaced: list[RevokedSession]


DEVICE_COLUMNS = "user_id, id, name, platform, created_at, last_seen_at"
UPSERT_DEVICE = f"""
INSERT INTO devices (user_id, id, name, platform, created_at, last_seen_at)
VALUES ($1, $2, $3, COALESCE($4, 'other'), $5, $5)
ON CONFLICT (user_id, id) DO UPDATE SET
    name = COALESCE(EXCLUDED.name, devices.name),
    platform = CASE WHEN $4::text IS NULL THEN devices.platform ELSE EXCLUDED.platform END,
    last_seen_at = EXCLUDED.last_seen_at
RETURNING {DEVICE_COLUMNS}
"""
SELECT_DEVICES = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY created_at, id"
RENAME_DEVICE = f"""
UPDATE devices SET name = $3 WHERE user_id = $1 AND id = $2 RETURNING {DEVICE_COLUMNS}
"""
LOCK_DEVICE = "SELECT id FROM devices WHERE user_id = $1 AND id = $2 FOR UPDATE"
DELETE_DEVICES = "DELETE FROM devices WHERE user_id = $1 AND id = ANY($2::text[])"

SESSION_COLUMNS = "id, user_id, device_id, auth_time, revoked_at"
INSERT_SESSION = """
INSERT INTO sessions (id, user_id, device_id, auth_time, created_at) VALUES ($1, $2, $3, $4, $4)
"""
SELECT_SESSION = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
SELECT_SESSION_FOR_UPDATE = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE"
BIND_SESSION_DEVICE = "UPDATE sessions SET device_id = $2 WHERE id = $1"
REVOKE_DEVICE_SESSIONS = """
UPDATE sessions SET revoked_at = $3, revoked_reason = $4
WHERE user_id = $1 AND device_id = $2 AND revoked_at IS NULL
RETURNING id, user_id, device_id
"""
REVOKE_SESSION = """
UPDATE sessions SET revoked_at = $3, revoked_reason = $4
WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
RETURNING id, user_id, device_id
"""
REVOKE_USER_SESSIONS = """
UPDATE sessions SET revoked_at = $2, revoked_reason = $3
WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $4::uuid
RETURNING id, user_id, device_id
"""
LOCK_USER_SESSIONS = """
SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id FOR UPDATE
"""

RENEW_AUTH_TIME = """
UPDATE sessions SET auth_time = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
RETURNING id
"""

INSERT_REFRESH_TOKEN = """
INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5)
"""
SELECT_REFRESH_FAMILY = "SELECT family_id FROM refresh_tokens WHERE token_hash = $1"
SELECT_REFRESH_TOKEN_FOR_UPDATE = """
SELECT expires_at, used_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
"""
MARK_REFRESH_TOKEN_USED = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1"
DELETE_REFRESH_FAMILIES = "DELETE FROM refresh_tokens WHERE family_id = ANY($1::uuid[])"
DELETE_PUSH_TOKENS = "DELETE FROM push_tokens WHERE user_id = $1 AND device_id = ANY($2::text[])"


def _device(row: asyncpg.Record) -> DeviceRow:
    return DeviceRow(
        user_id=str(row["user_id"]),
        id=row["id"],
        name=row["name"],
        platform=row["platform"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
    )


def _session(row: asyncpg.Record) -> SessionRow:
    return SessionRow(str(row["id"]), str(row["user_id"]), row["device_id"], row["auth_time"])


def _revoked(rows: list[asyncpg.Record]) -> list[RevokedSession]:
    return [RevokedSession(str(r["id"]), str(r["user_id"]), r["device_id"]) for r in rows]


async def _end(
    conn: asyncpg.Connection, revoked: list[RevokedSession], *, keep_devices: bool
) -> None:
    """What a revocation takes with it: the families' refresh tokens, the devices' push
    tokens (a logged-out phone must not light up; a new login registers again) and, unless
    the device stays (a new login of it), the devices (their biometric keys go with them)."""
    if not revoked:
        return
    await conn.execute(DELETE_REFRESH_FAMILIES, [r.id for r in revoked])
    by_user: dict[str, list[str]] = {}
    for r in revoked:
        if r.device_id is not None:
            by_user.setdefault(r.user_id, []).append(r.device_id)
    for user_id, device_ids in by_user.items():
        await conn.execute(DELETE_PUSH_TOKENS, user_id, device_ids)
        if not keep_devices:
            await conn.execute(DELETE_DEVICES, user_id, device_ids)


@translates_failures
class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def open(
        self,
        *,
        session_id: str,
        user_id: str,
        device: DeviceInfo | None,
        token_hash: bytes,
        expires_at: int,
        now_ms: int,
    ) -> OpenedSession:
        """A new session with its first refresh token; a named device is created or updated,
        and its earlier session (if any) revoked as ``replaced``."""
        async with self._pool.acquire() as conn, conn.transaction():
            row: DeviceRow | None = None
            replaced: list[RevokedSession] = []
            if device is not None:
                record = await conn.fetchrow(
                    UPSERT_DEVICE, user_id, device.id, device.name, device.platform, now_ms
                )
                row = _device(record)
                replaced = _revoked(
                    await conn.fetch(REVOKE_DEVICE_SESSIONS, user_id, device.id, now_ms, "replaced")
                )
                await _end(conn, replaced, keep_devices=True)
            await conn.execute(
                INSERT_SESSION, session_id, user_id, device.id if device else None, now_ms
            )
            await conn.execute(
                INSERT_REFRESH_TOKEN, token_hash, session_id, user_id, expires_at, now_ms
            )
            return OpenedSession(row, replaced)

    async def get(self, session_id: str) -> SessionRow | None:
        """The session while it is live; None once revoked (or never)."""
        row = await self._pool.fetchrow(SELECT_SESSION, session_id)
        if row is None or row["revoked_at"] is not None:
            return None
        return _session(row)

    async def bind(self, session_id: str, user_id: str, device_id: str, now_ms: int) -> Binding:
        """Fix a session's device at its first connect; a later connect must name the same."""
        row = await self._pool.fetchrow(SELECT_SESSION, session_id)
        if row is None or str(row["user_id"]) != user_id or row["revoked_at"] is not None:
            return Binding("revoked", [])
        if row["device_id"] is not None:
            return Binding("same" if row["device_id"] == device_id else "mismatch", [])
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SELECT_SESSION_FOR_UPDATE, session_id)
            if row is None or row["revoked_at"] is not None:
                return Binding("revoked", [])
            if row["device_id"] is not None:
                return Binding("same" if row["device_id"] == device_id else "mismatch", [])
            replaced = _revoked(
                await conn.fetch(REVOKE_DEVICE_SESSIONS, user_id, device_id, now_ms, "replaced")
            )
            await _end(conn, replaced, keep_devices=True)
            await conn.fetchrow(UPSERT_DEVICE, user_id, device_id, None, None, now_ms)
            await conn.execute(BIND_SESSION_DEVICE, session_id, device_id)
            return Binding("bound", replaced)

    async def rotate(
        self, old_hash: bytes, new_hash: bytes, new_expires_at: int, now_ms: int, grace_ms: int
    ) -> Rotation:
        """Spend ``old_hash`` for ``new_hash`` in its family, under the session's row lock.

        A token spent again within ``grace_ms`` of its first use (a retry after a lost
        answer) gets a successor too ("grace"); later, it revokes the session ("reused").
        """
        async with self._pool.acquire() as conn, conn.transaction():
            family = await conn.fetchval(SELECT_REFRESH_FAMILY, old_hash)
            if family is None:
                return Rotation("unknown")
            session_row = await conn.fetchrow(SELECT_SESSION_FOR_UPDATE, family)
            if session_row is None or session_row["revoked_at"] is not None:
                return Rotation("revoked")
            session = _session(session_row)
            token = await conn.fetchrow(SELECT_REFRESH_TOKEN_FOR_UPDATE, old_hash)
            if token is None:  # revoked while we waited for the lock
                return Rotation("revoked")
            if token["used_at"] is not None:
                if now_ms - token["used_at"] > grace_ms:
                    revoked = _revoked(
                        await conn.fetch(
                            REVOKE_SESSION, family, session.user_id, now_ms, "token_reused"
                        )
                    )
                    await _end(conn, revoked, keep_devices=False)
                    return Rotation("reused", session, revoked[0] if revoked else None)
                outcome: RotateOutcome = "grace"
            elif token["expires_at"] <= now_ms:
                return Rotation("expired", session)
            else:
                outcome = "rotated"
                await conn.execute(MARK_REFRESH_TOKEN_USED, old_hash, now_ms)
            await conn.execute(
                INSERT_REFRESH_TOKEN, new_hash, family, session.user_id, new_expires_at, now_ms
            )
            return Rotation(outcome, session)

    async def revoke(
        self, session_id: str, user_id: str, reason: str, now_ms: int
    ) -> RevokedSession | None:
        """Revoke one live session of ``user_id`` (its device goes with it); None if none."""
        async with self._pool.acquire() as conn, conn.transaction():
            revoked = _revoked(
                await conn.fetch(REVOKE_SESSION, session_id, user_id, now_ms, reason)
            )
            await _end(conn, revoked, keep_devices=False)
            return revoked[0] if revoked else None

    async def revoke_all(
        self, user_id: str, reason: str, now_ms: int, *, keep: str | None = None
    ) -> list[RevokedSession]:
        """Revoke every live session of ``user_id`` but ``keep``, each under its row lock."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.fetch(LOCK_USER_SESSIONS, user_id)
            revoked = _revoked(
                await conn.fetch(
                    REVOKE_USER_SESSIONS, user_id, now_ms, reason, uuid.UUID(keep) if keep else None
                )
            )
            await _end(conn, revoked, keep_devices=False)
            return revoked

    async def devices(self, user_id: str) -> list[DeviceRow]:
        return [_device(r) for r in await self._pool.fetch(SELECT_DEVICES, user_id)]

    async def rename_device(self, user_id: str, device_id: str, name: str) -> DeviceRow | None:
        row = await self._pool.fetchrow(RENAME_DEVICE, user_id, device_id, name)
        return _device(row) if row else None

    async def remove_device(
        self, user_id: str, device_id: str, now_ms: int
    ) -> list[RevokedSession] | None:
        """Revoke the device's sessions and delete it (its biometric keys go with it); None
        when the user has no such device."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(LOCK_DEVICE, user_id, device_id) is None:
                return None
            revoked = _revoked(
                await conn.fetch(
                    REVOKE_DEVICE_SESSIONS, user_id, device_id, now_ms, "device_removed"
                )
            )
            await _end(conn, revoked, keep_devices=True)
            await conn.execute(DELETE_DEVICES, user_id, [device_id])
            return revoked

    async def renew_auth(
        self, session_id: str, user_id: str, token_hash: bytes, expires_at: int, now_ms: int
    ) -> bool:
        """A fresh ``auth_time`` and one more refresh token for a live session."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(RENEW_AUTH_TIME, session_id, user_id, now_ms) is None:
                return False
            await conn.execute(
                INSERT_REFRESH_TOKEN, token_hash, session_id, user_id, expires_at, now_ms
            )
            return True
