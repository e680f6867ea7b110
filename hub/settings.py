"""The hub's one settings object, read from the environment once and passed in everywhere.

Nothing else in the code reads ``os.environ``: a test or a second node builds its own
``Settings`` and gets a hub that shares nothing with any other.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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


def _rate_limit(
    env: Mapping[str, str], name: str, default: tuple[int, int] | None
) -> tuple[int, int] | None:
    """``<count>/<seconds>`` as (count, seconds), or None for ``off`` (load tests)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return None
    count, sep, seconds = raw.partition("/")
    try:
        limit = (int(count), int(seconds))
    except ValueError:
        limit = (0, 0)
    if not sep or min(limit) < 1:
        raise SettingsError(f"{name} must be <count>/<seconds> (e.g. 100/900) or off, got {raw!r}")
    return limit


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


LIVEKIT_INSTANCE_NAMES = ("main", "meet", "chat")
LIVEKIT_DEV_URL = "ws://127.0.0.1:7880"
LIVEKIT_DEV_API_KEY = "hub-dev"


@dataclass(frozen=True, slots=True)
class LiveKitInstanceConfig:
    """One LiveKit deployment: where phones connect (``url``), where the hub calls its server
    API (``api_url``), and the key pair that signs tokens and webhooks."""

    name: str
    url: str
    api_url: str
    api_key: str
    api_secret: str = field(repr=False)


def _livekit_api_url(ws_url: str) -> str:
    """The server API answers HTTP on the same host as the websocket: ws→http, wss→https."""
    if ws_url.startswith("ws"):
        return "http" + ws_url[2:]
    return ws_url


def livekit_instances_from_env(env: Mapping[str, str]) -> tuple[LiveKitInstanceConfig, ...]:
    """Each instance that has ``LIVEKIT_<X>_URL``, ``_API_KEY`` and ``_API_SECRET``.

    A half-configured instance is an error at start-up rather than a surprise at the first
    call; an instance with none of the three is simply not configured (refused when used).
    """
    instances = []
    for name in LIVEKIT_INSTANCE_NAMES:
        prefix = f"LIVEKIT_{name.upper()}_"
        url = _str(env, prefix + "URL", "")
        key = _str(env, prefix + "API_KEY", "")
        secret = _str(env, prefix + "API_SECRET", "")
        if not (url or key or secret):
            continue
        if not (url and key and secret):
            raise SettingsError(
                f"LiveKit instance {name!r} needs {prefix}URL, {prefix}API_KEY and "
                f"{prefix}API_SECRET together"
            )
        api_url = _str(env, prefix + "API_URL", _livekit_api_url(url))
        instances.append(LiveKitInstanceConfig(name, url, api_url, key, secret))
    return tuple(instances)


def livekit_dev_instances(data_dir: Path) -> tuple[LiveKitInstanceConfig, ...]:
    """Offline development: the three instances on one local ``livekit-server`` with key
    ``hub-dev`` and a secret generated once into ``<data>/livekit.secret``."""
    secret = load_or_create_dev_secret(data_dir, "livekit")
    api_url = _livekit_api_url(LIVEKIT_DEV_URL)
    return tuple(
        LiveKitInstanceConfig(name, LIVEKIT_DEV_URL, api_url, LIVEKIT_DEV_API_KEY, secret)
        for name in LIVEKIT_INSTANCE_NAMES
    )


def _any_livekit_instance_variable(env: Mapping[str, str]) -> bool:
    prefixes = tuple(f"LIVEKIT_{name.upper()}_" for name in LIVEKIT_INSTANCE_NAMES)
    return any(key.startswith(prefixes) and value for key, value in env.items())


STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"
BRAINTREE_NAMED_ENVIRONMENTS = ("sandbox", "production")


@dataclass(frozen=True, slots=True)
class StripeConfig:
    """Stripe: the secret key creates PaymentIntents, the webhook secret verifies
    ``Stripe-Signature``, the publishable key is handed to the app. Secrets stay out of repr."""

    secret_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    publishable_key: str
    api_base: str


@dataclass(frozen=True, slots=True)
class BraintreeConfig:
    """Braintree (PayPal): ``environment`` is ``sandbox``, ``production`` or an
    ``http://host:port`` base URL (a local fake in tests)."""

    merchant_id: str
    public_key: str
    private_key: str = field(repr=False)
    environment: str


def stripe_from_env(env: Mapping[str, str]) -> StripeConfig | None:
    """None when ``STRIPE_SECRET_KEY`` is unset; a key without its webhook secret is refused,
    since its payments could never leave ``pending``."""
    secret = _str(env, "STRIPE_SECRET_KEY", "")
    webhook_secret = _str(env, "STRIPE_WEBHOOK_SECRET", "")
    if not secret and not webhook_secret:
        return None
    if not (secret and webhook_secret):
        raise SettingsError("Stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET together")
    api_base = _str(env, "STRIPE_API_BASE", STRIPE_DEFAULT_API_BASE).rstrip("/")
    if not api_base.startswith(("https://", "http://")):
        raise SettingsError(f"STRIPE_API_BASE must be an http(s) URL, got {api_base!r}")
    return StripeConfig(secret, webhook_secret, _str(env, "STRIPE_PUBLISHABLE_KEY", ""), api_base)


def braintree_from_env(env: Mapping[str, str]) -> BraintreeConfig | None:
    """None when none of the three credentials is set; some but not all is an error."""
    merchant = _str(env, "BRAINTREE_MERCHANT_ID", "")
    public = _str(env, "BRAINTREE_PUBLIC_KEY", "")
    private = _str(env, "BRAINTREE_PRIVATE_KEY", "")
    if not (merchant or public or private):
        return None
    if not (merchant and public and private):
        raise SettingsError(
            "Braintree needs BRAINTREE_MERCHANT_ID, BRAINTREE_PUBLIC_KEY and "
            "BRAINTREE_PRIVATE_KEY together"
        )
    environment = _str(env, "BRAINTREE_ENVIRONMENT", "sandbox").rstrip("/")
    if environment not in BRAINTREE_NAMED_ENVIRONMENTS and not environment.startswith("http://"):
        raise SettingsError(
            "BRAINTREE_ENVIRONMENT must be sandbox, production or an http://host:port URL, "
            f"got {environment!r}"
        )
    return BraintreeConfig(merchant, public, private, environment)


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
    # REST requests per (count, seconds) window, per user when authenticated and per IP
    # otherwise; None when off.
    api_rate_limit: tuple[int, int] | None = (100, 15 * 60)
    # Where phones reach this hub (behind a load balancer), for absolute URLs such as a
    # band's calendarUrl; empty: the origin of the request that asks.
    public_url: str = ""

    device_ttl_seconds: int = 30
    max_devices_per_user: int = 10
    socket_events_per_second: float = 50.0
    socket_event_burst: int = 100
    max_socket_payload_bytes: int = 1024 * 1024
    max_queued_events: int = 1000
    sync_page_limit: int = 500
    typing_min_interval_ms: int = 1000

    livekit_instances: tuple[LiveKitInstanceConfig, ...] = ()
    livekit_dev_defaults: bool = False
    livekit_token_seconds: int = 600
    call_ring_seconds: int = 30
    call_max_seconds: int = 4 * 3600

    stripe: StripeConfig | None = None
    braintree: BraintreeConfig | None = None
    payment_gateway_timeout_seconds: int = 30
    payment_idempotency_stale_seconds: int = 90
    payment_idempotency_wait_seconds: int = 40

    db_pool_min: int = 2
    db_pool_max: int = 20
    redis_max_connections: int = 200
    gc_freeze: bool = True
    gc_young_threshold: int = 20_000
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
            api_rate_limit=_rate_limit(env, "API_RATE_LIMIT", (100, 15 * 60)),
            public_url=_str(env, "HUB_PUBLIC_URL", "").rstrip("/"),
            device_ttl_seconds=_int(env, "DEVICE_TTL_SECONDS", 30, minimum=3),
            max_devices_per_user=_int(env, "MAX_DEVICES_PER_USER", 10, minimum=1),
            socket_events_per_second=_float(env, "SOCKET_EVENTS_PER_SECOND", 50.0),
            socket_event_burst=_int(env, "SOCKET_EVENT_BURST", 100, minimum=1),
            max_queued_events=_int(env, "MAX_QUEUED_EVENTS", 1000, minimum=10),
            max_socket_payload_bytes=_int(
                env, "MAX_SOCKET_PAYLOAD_BYTES", 1024 * 1024, minimum=1024
            ),
            sync_page_limit=_int(env, "SYNC_PAGE_LIMIT", 500, minimum=1),
            typing_min_interval_ms=_int(env, "TYPING_MIN_INTERVAL_MS", 1000),
            livekit_instances=livekit_instances_from_env(env),
            livekit_dev_defaults=not _any_livekit_instance_variable(env),
            livekit_token_seconds=_int(env, "LIVEKIT_TOKEN_SECONDS", 600, minimum=30),
            call_ring_seconds=_int(env, "CALL_RING_SECONDS", 30, minimum=1),
            call_max_seconds=_int(env, "CALL_MAX_SECONDS", 4 * 3600, minimum=60),
            stripe=stripe_from_env(env),
            braintree=braintree_from_env(env),
            payment_gateway_timeout_seconds=_int(
                env, "PAYMENT_GATEWAY_TIMEOUT_SECONDS", 30, minimum=1
            ),
            payment_idempotency_stale_seconds=_int(
                env, "PAYMENT_IDEMPOTENCY_STALE_SECONDS", 90, minimum=1
            ),
            payment_idempotency_wait_seconds=_int(
                env, "PAYMENT_IDEMPOTENCY_WAIT_SECONDS", 40, minimum=1
            ),
            db_pool_min=_int(env, "DB_POOL_MIN", 2, minimum=1),
            db_pool_max=_int(env, "DB_POOL_MAX", 20, minimum=1),
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 200, minimum=2),
            gc_freeze=_str(env, "HUB_GC_FREEZE", "1") not in ("0", "false", "no"),
            gc_young_threshold=_int(env, "HUB_GC_YOUNG_THRESHOLD", 20_000, minimum=100),
            log_level=_str(env, "HUB_LOG_LEVEL", "INFO").upper(),
            cors_origins=cors,
        )

    def with_defaults_filled(self) -> Settings:
        """Fill what was left empty: the dev JWT secret (kept in the data folder) and a node id."""
        secret = self.jwt_secret or load_or_create_dev_secret(self.data_dir, "jwt")
        node_id = self.node_id or secrets.token_hex(6)
        filled = replace(self, jwt_secret=secret, node_id=node_id)
        if self.livekit_dev_defaults and not self.livekit_instances:
            # No LIVEKIT_<X>_* at all: development, one local livekit-server for all three.
            filled = replace(filled, livekit_instances=livekit_dev_instances(self.data_dir))
        return filled
