"""Users, their public keys, refresh tokens and biometric keys."""

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
class RefreshTokenRow:
    family_id: str
    user_id: str
    expires_at: int
    used_at: int | None
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class BiometricKeyRow:
    id: str
    user_id: str
    public_key: bytes
    device_name: str


USER_COLUMNS = "id, email, name, role, public_key, public_key_at, last_seen_at"
INSERT_USER = f"""
INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING {USER_COLUMNS}
"""
INSERT_USER_SEQ = "INSERT INTO user_seqs (user_id) VALUES ($1)"
SELECT_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
SELECT_CREDENTIALS_BY_EMAIL = "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)"
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

INSERT_REFRESH_TOKEN = """
INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5)
"""
SELECT_REFRESH_TOKEN_FOR_UPDATE = """
SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens
WHERE token_hash = $1 FOR UPDATE
"""
MARK_REFRESH_TOKEN_USED = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1"
REVOKE_REFRESH_FAMILY = """
UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL
"""
REVOKE_USER_REFRESH_TOKENS = """
UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL
"""

INSERT_BIOMETRIC_KEY = """
INSERT INTO biometric_keys (id, user_id, public_key, device_name, created_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (public_key) DO NOTHING RETURNING id
"""
SELECT_BIOMETRIC_KEY = (
    "SELECT id, user_id, public_key, device_name FROM biometric_keys WHERE id = $1"
)
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
class RefreshTokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self, token_hash: bytes, family_id: str, user_id: str, expires_at: int, now_ms: int
    ) -> None:
        await self._pool.execute(
            INSERT_REFRESH_TOKEN, token_hash, family_id, user_id, expires_at, now_ms
        )

    async def rotate(
        self, old_hash: bytes, new_hash: bytes, new_expires_at: int, now_ms: int
    ) -> tuple[str, RefreshTokenRow | None]:
        """Spend ``old_hash`` and store ``new_hash`` in its family, in one transaction.

        Returns ("rotated", row), ("unknown", None), ("expired", row), or ("reused", row) —
        in the last case the whole family has just been revoked (a stolen token was replayed).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SELECT_REFRESH_TOKEN_FOR_UPDATE, old_hash)
            if row is None:
                return "unknown", None
            token = RefreshTokenRow(
                family_id=str(row["family_id"]),
                user_id=str(row["user_id"]),
                expires_at=row["expires_at"],
                used_at=row["used_at"],
                revoked_at=row["revoked_at"],
            )
            if token.used_at is not None or token.revoked_at is not None:
                await conn.execute(REVOKE_REFRESH_FAMILY, row["family_id"], now_ms)
                return "reused", token
            if token.expires_at <= now_ms:
                return "expired", token
            await conn.execute(MARK_REFRESH_TOKEN_USED, old_hash, now_ms)
            await conn.execute(
                INSERT_REFRESH_TOKEN,
                new_hash,
                row["family_id"],
                row["user_id"],
                new_expires_at,
                now_ms,
            )
            return "rotated", token

    async def revoke_family_of(self, token_hash: bytes, user_id: str, now_ms: int) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SELECT_REFRESH_TOKEN_FOR_UPDATE, token_hash)
            if row is None or str(row["user_id"]) != user_id:
                return False
            await conn.execute(REVOKE_REFRESH_FAMILY, row["family_id"], now_ms)
            return True

    async def revoke_all(self, user_id: str, now_ms: int) -> None:
        await self._pool.execute(REVOKE_USER_REFRESH_TOKENS, user_id, now_ms)


@translates_failures
class BiometricKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self, user_id: str, public_key: bytes, device_name: str, now_ms: int
    ) -> str | None:
        """The new key's id, or None when that key is already registered."""
        key_id = await self._pool.fetchval(
            INSERT_BIOMETRIC_KEY, uuid.uuid4(), user_id, public_key, device_name, now_ms
        )
        return str(key_id) if key_id else None

    async def get(self, key_id: str) -> BiometricKeyRow | None:
        row = await self._pool.fetchrow(SELECT_BIOMETRIC_KEY, key_id)
        if row is None:
            return None
        return BiometricKeyRow(
            str(row["id"]), str(row["user_id"]), bytes(row["public_key"]), row["device_name"]
        )

    async def touch(self, key_id: str, now_ms: int) -> None:
        await self._pool.execute(TOUCH_BIOMETRIC_KEY, key_id, now_ms)

    async def delete(self, key_id: str, user_id: str) -> bool:
        result: str = await self._pool.execute(DELETE_BIOMETRIC_KEY, key_id, user_id)
        return result.endswith(" 1")
