"""The hub's one settings object, read from the environment once and passed in everywhere.

Nothing else in the code reads ``os.environ``: a test or a second node builds its own
``Settings`` and gets a hub that shares nothing with any other.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable holds a value the hub cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


def load_or_create_dev_secret(data_dir: Path, name: str) -> str:
    """A development secret kept in the data folder, so nodes sharing the folder agree.

    Created once with mode 0600; never logged.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{name}.secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        value = secrets.token_urlsafe(48)
        handle.write(value)
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the hub can be told. Times in seconds unless the name says otherwise."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "hub"
    jwt_secret: str = ""
    node_id: str = ""

    access_token_seconds: int = 24 * 3600
    refresh_token_seconds: int = 30 * 24 * 3600
    bcrypt_rounds: int = 12
    biometric_challenge_seconds: int = 60

    login_attempts_per_ip: int = 20
    login_attempts_per_account: int = 10
    login_window_seconds: int = 15 * 60
    api_requests_per_ip: int = 100
    api_window_seconds: int = 15 * 60

    device_ttl_seconds: int = 30
    max_devices_per_user: int = 10
    socket_events_per_second: float = 50.0
    socket_event_burst: int = 100
    max_socket_payload_bytes: int = 1024 * 1024
    sync_page_limit: int = 500
    typing_min_interval_ms: int = 1000

    db_pool_min: int = 2
    db_pool_max: int = 20
    redis_max_connections: int = 200
    gc_freeze: bool = True
    log_level: str = "INFO"
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every ``HUB_*`` and service variable; see the README for the list."""
        env = os.environ if env is None else env
        data_dir = Path(_str(env, "HUB_DATA_DIR", "var"))
        cors = tuple(o.strip() for o in _str(env, "HUB_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            host=_str(env, "HUB_HOST", "127.0.0.1"),
            port=_int(env, "HUB_PORT", 8000),
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=_str(env, "REDIS_PREFIX", "hub"),
            jwt_secret=env.get("JWT_SECRET", ""),
            node_id=_str(env, "HUB_NODE_ID", ""),
            access_token_seconds=_int(env, "ACCESS_TOKEN_SECONDS", 24 * 3600, minimum=1),
            refresh_token_seconds=_int(env, "REFRESH_TOKEN_SECONDS", 30 * 24 * 3600, minimum=1),
            bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", 12, minimum=4),
            biometric_challenge_seconds=_int(env, "BIOMETRIC_CHALLENGE_SECONDS", 60, minimum=5),
            login_attempts_per_ip=_int(env, "LOGIN_ATTEMPTS_PER_IP", 20, minimum=1),
            login_attempts_per_account=_int(env, "LOGIN_ATTEMPTS_PER_ACCOUNT", 10, minimum=1),
            login_window_seconds=_int(env, "LOGIN_WINDOW_SECONDS", 15 * 60, minimum=1),
            api_requests_per_ip=_int(env, "API_REQUESTS_PER_IP", 100, minimum=1),
            api_window_seconds=_int(env, "API_WINDOW_SECONDS", 15 * 60, minimum=1),
            device_ttl_seconds=_int(env, "DEVICE_TTL_SECONDS", 30, minimum=3),
            max_devices_per_user=_int(env, "MAX_DEVICES_PER_USER", 10, minimum=1),
            socket_events_per_second=_float(env, "SOCKET_EVENTS_PER_SECOND", 50.0),
            socket_event_burst=_int(env, "SOCKET_EVENT_BURST", 100, minimum=1),
            max_socket_payload_bytes=_int(
                env, "MAX_SOCKET_PAYLOAD_BYTES", 1024 * 1024, minimum=1024
            ),
            sync_page_limit=_int(env, "SYNC_PAGE_LIMIT", 500, minimum=1),
            typing_min_interval_ms=_int(env, "TYPING_MIN_INTERVAL_MS", 1000),
            db_pool_min=_int(env, "DB_POOL_MIN", 2, minimum=1),
            db_pool_max=_int(env, "DB_POOL_MAX", 20, minimum=1),
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 200, minimum=2),
            gc_freeze=_str(env, "HUB_GC_FREEZE", "1") not in ("0", "false", "no"),
            log_level=_str(env, "HUB_LOG_LEVEL", "INFO").upper(),
            cors_origins=cors,
        )

    def with_defaults_filled(self) -> Settings:
        """Fill what was left empty: the dev JWT secret (kept in the data folder) and a node id."""
        secret = self.jwt_secret or load_or_create_dev_secret(self.data_dir, "jwt")
        node_id = self.node_id or secrets.token_hex(6)
        return replace(self, jwt_secret=secret, node_id=node_id)
