"""Users, their public keys and biometric keys (sessions and devices: ``sessions.py``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str
    name: str
    role: str
    public_key: str | None
    public_key_at: int | None
    last_seen_at: int | None


@dataclass(frozen=True, slots=True)
class Credentials:
    id: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class BiometricKeyListing:
    id: str
    device_id: str | None
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class BiometricKeyRow:
    id: str
    user_id: str
    public_key: bytes
    device_name: str
    device_id: str | None = None


USER_COLUMNS = "id, email, name, role, public_key, public_key_at, last_seen_at"
INSERT_USER = f"""
INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING {USER_COLUMNS}
"""
INSERT_USER_SEQ = "INSERT INTO user_seqs (user_id) VALUES ($1)"
SELECT_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
SELECT_CREDENTIALS_BY_EMAIL = "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)"
SELECT_PASSWORD_HASH = "SELECT password_hash FROM users WHERE id = $1"
UPDATE_PASSWORD_HASH = "UPDATE users SET password_hash = $2 WHERE id = $1"
SELECT_LAST_SEEN_OF = "SELECT id, last_seen_at FROM users WHERE id = ANY($1::uuid[])"
UPDATE_PROFILE = f"""
UPDATE users SET name = COALESCE($2, name) WHERE id = $1 RETURNING {USER_COLUMNS}
"""
UPDATE_PUBLIC_KEY = f"""
UPDATE users SET public_key = $2, public_key_at = $3 WHERE id = $1 RETURNING {USER_COLUMNS}
"""
UPDATE_LAST_SEEN = """
UPDATE users SET last_seen_at = $2 WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)
"""

INSERT_BIOMETRIC_KEY = """
INSERT INTO biometric_keys (id, user_id, public_key, device_name, created_at, device_id)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (public_key) DO NOTHING RETURNING id
"""
SELECT_BIOMETRIC_KEY = (
    "SELECT id, user_id, public_key, device_name, device_id FROM biometric_keys WHERE id = $1"
)
SELECT_USER_BIOMETRIC_KEYS = """
SELECT id, device_id, created_at, last_used_at FROM biometric_keys WHERE user_id = $1
ORDER BY created_at, id
"""
TOUCH_BIOMETRIC_KEY = "UPDATE biometric_keys SET last_used_at = $2 WHERE id = $1"
DELETE_BIOMETRIC_KEY = "DELETE FROM biometric_keys WHERE id = $1 AND user_id = $2"


def _user(row: asyncpg.Record) -> UserRow:
    return UserRow(
        id=str(row["id"]),
        email=row["email"],
        name=row["name"],
        role=row["role"],
        public_key=row["public_key"],
        public_key_at=row["public_key_at"],
        last_seen_at=row["last_seen_at"],
    )


@translates_failures
class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, email: str, password_hash: str, name: str) -> UserRow | None:
        """The new user, or None when the email is taken (case-insensitively)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(INSERT_USER, uuid.uuid4(), email, password_hash, name)
            if row is None:
                return None
            await conn.execute(INSERT_USER_SEQ, row["id"])
            return _user(row)

    async def get(self, user_id: str) -> UserRow | None:
        row = await self._pool.fetchrow(SELECT_USER, user_id)
        return _user(row) if row else None

    async def credentials_by_email(self, email: str) -> Credentials | None:
        row = await self._pool.fetchrow(SELECT_CREDENTIALS_BY_EMAIL, email)
        return Credentials(str(row["id"]), row["password_hash"]) if row else None

    async def password_hash_of(self, user_id: str) -> str | None:
        value = await self._pool.fetchval(SELECT_PASSWORD_HASH, user_id)
        return str(value) if value is not None else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._pool.execute(UPDATE_PASSWORD_HASH, user_id, password_hash)

    async def last_seen_of(self, user_ids: list[str]) -> dict[str, int | None]:
        """``last_seen_at`` of each existing user among ``user_ids``, in one query."""
        rows = await self._pool.fetch(SELECT_LAST_SEEN_OF, user_ids)
        return {str(r["id"]): r["last_seen_at"] for r in rows}

    async def update_profile(self, user_id: str, *, name: str | None) -> UserRow | None:
        row = await self._pool.fetchrow(UPDATE_PROFILE, user_id, name)
        return _user(row) if row else None

    async def set_public_key(self, user_id: str, public_key: str, now_ms: int) -> UserRow | None:
        row = await self._pool.fetchrow(UPDATE_PUBLIC_KEY, user_id, public_key, now_ms)
        return _user(row) if row else None

    async def set_last_seen(self, user_id: str, last_seen_ms: int) -> None:
        await self._pool.execute(UPDATE_LAST_SEEN, user_id, last_seen_ms)


@translates_failures
class BiometricKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self,
        user_id: str,
        public_key: bytes,
        device_name: str,
        now_ms: int,
        device_id: str | None = None,
    ) -> str | None:
        """The new key's id, or None when that key is already registered."""
        key_id = await self._pool.fetchval(
            INSERT_BIOMETRIC_KEY, uuid.uuid4(), user_id, public_key, device_name, now_ms, device_id
        )
        return str(key_id) if key_id else None

    async def of_user(self, user_id: str) -> list[BiometricKeyListing]:
        rows = await self._pool.fetch(SELECT_USER_BIOMETRIC_KEYS, user_id)
        return [
            BiometricKeyListing(str(r["id"]), r["device_id"], r["created_at"], r["last_used_at"])
            for r in rows
        ]

    async def get(self, key_id: str) -> BiometricKeyRow | None:
        row = await self._pool.fetchrow(SELECT_BIOMETRIC_KEY, key_id)
        if row is None:
            return None
        return BiometricKeyRow(
            str(row["id"]),
            str(row["user_id"]),
            bytes(row["public_key"]),
            row["device_name"],
            row["device_id"],
        )

    async def touch(self, key_id: str, now_ms: int) -> None:
        await self._pool.execute(TOUCH_BIOMETRIC_KEY, key_id, now_ms)

    async def delete(self, key_id: str, user_id: str) -> bool:
        result: str = await self._pool.execute(DELETE_BIOMETRIC_KEY, key_id, user_id)
        return result.endswith(" 1")
