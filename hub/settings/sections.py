"""The settings, one frozen section per capability: each builder receives only its slice.

Every variable is declared once here, with its default, bounds and meaning (the README's
configuration table is generated from these declarations: ``python -m hub.settings``).
Times are in seconds unless the name says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub.settings.integrations import (
    BraintreeConfig,
    LiveKitInstanceConfig,
    StripeConfig,
    any_livekit_instance_variable,
    braintree_from_env,
    livekit_instances_from_env,
    stripe_from_env,
)
from hub.settings.variables import (
    parse_optional,
    parse_rate_limit,
    parse_url,
    read_section,
    setting,
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The process: where it listens, its data folder, its name on the bus, its runtime."""

    host: str = setting("HUB_HOST", "127.0.0.1", "address to listen on (`--host`)")
    port: int = setting("HUB_PORT", 8000, "port (`--port`)", minimum=0)
    data_dir: Path = setting(
        "HUB_DATA_DIR",
        Path("var"),
        "data folder: embedded servers, generated dev secrets (`--data-dir`)",
    )
    node_id: str = setting(
        "HUB_NODE_ID",
        "",
        "this node's id on the Redis bus (`--node-id`); unique per running node",
        shown="random",
    )
    gc_freeze: bool = setting(
        "HUB_GC_FREEZE", True, "`gc.freeze()` after start-up (see docs/architecture.md)"
    )
    gc_young_threshold: int = setting(
        "HUB_GC_YOUNG_THRESHOLD",
        20_000,
        "allocations between young-generation collections (Python's default is 700; "
        "measured: -16 % hub CPU per message)",
        minimum=100,
    )
    log_level: str = setting(
        "HUB_LOG_LEVEL",
        "INFO",
        "log level (the `stripe` library never below `INFO`: at `DEBUG` it logs client secrets)",
        parse=lambda _name, raw: raw.upper(),
    )


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """PostgreSQL and Redis: None URLs mean embedded servers (``run_hub.py`` starts them)."""

    database_url: str | None = setting(
        "DATABASE_URL",
        None,
        "PostgreSQL URL, e.g. `postgresql://user:pw@db:5432/hub`",
        shown="embedded",
        parse=parse_optional,
    )
    redis_url: str | None = setting(
        "REDIS_URL",
        None,
        "Redis URL, e.g. `redis://cache:6379/0`",
        shown="embedded",
        parse=parse_optional,
    )
    redis_prefix: str = setting(
        "REDIS_PREFIX", "hub", "prefix of every Redis key and pub/sub channel the hub uses"
    )
    db_pool_min: int = setting(
        "DB_POOL_MIN", 2, "PostgreSQL pool size per node, at least…", minimum=1
    )
    db_pool_max: int = setting("DB_POOL_MAX", 20, "…and at most", minimum=1)
    redis_max_connections: int = setting(
        "REDIS_MAX_CONNECTIONS",
        200,
        "Redis pool size per node (a blocking pool: bursts wait)",
        minimum=2,
    )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The REST side: its shared rate limit, how phones reach it, CORS."""

    rate_limit: tuple[int, int] | None = setting(
        "API_RATE_LIMIT",
        (100, 15 * 60),
        "REST requests per window as `<count>/<seconds>` (the seed's 100 / 15 min), counted "
        "per user when the request carries a valid access token and per IP otherwise; `off` "
        "disables it (load tests)",
        shown="`100/900`",
        parse=parse_rate_limit,
    )
    public_url: str = setting(
        "HUB_PUBLIC_URL",
        "",
        "how phones reach the hub (e.g. `https://api.artist-space.app`), for absolute links "
        "such as a band's `calendarUrl`",
        shown="the request's origin",
        parse=parse_url,
    )
    cors_origins: tuple[str, ...] = setting(
        "HUB_CORS_ORIGINS",
        (),
        "comma-separated origins allowed by CORS, for REST (preflights answered) and "
        "Socket.IO (the mobile app needs none)",
        shown="empty",
    )
    trusted_proxies: tuple[str, ...] = setting(
        "TRUSTED_PROXIES",
        (),
        "comma-separated addresses or CIDRs of the load balancers in front of the hub: only "
        "from them is `X-Forwarded-For` (its rightmost address not in this list) the client's "
        "address, which every per-IP limit counts",
        shown="empty",
    )


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """Tokens, passwords and the login limits."""

    jwt_secret: str = setting(
        "JWT_SECRET",
        "",
        "HS256 signing secret (≥ 32 chars). Unset: generated once into `<data>/jwt.secret` "
        "(mode 0600), so nodes sharing a data folder agree. **Set it in production.**",
        shown="generated",
    )
    access_token_seconds: int = setting(
        "ACCESS_TOKEN_SECONDS", 24 * 3600, "access token lifetime (1 day)", minimum=1
    )
    refresh_token_seconds: int = setting(
        "REFRESH_TOKEN_SECONDS", 30 * 24 * 3600, "refresh token lifetime (30 days)", minimum=1
    )
    refresh_reuse_grace_seconds: int = setting(
        "REFRESH_REUSE_GRACE_SECONDS",
        30,
        "a just-rotated refresh token presented again this soon (a retry) gets a pair of its "
        "session instead of revoking it; 0: no grace",
        minimum=0,
    )
    reauth_max_age_seconds: int = setting(
        "REAUTH_MAX_AGE_SECONDS",
        300,
        "how recent a password or biometric check must be for what hands over the account "
        "(a biometric key, replacing the public key, removing another device, logout of all)",
        minimum=1,
    )
    connects_per_minute: int = setting(
        "CONNECTS_PER_MINUTE",
        60,
        "Socket.IO CONNECT attempts per user per minute, across nodes (`rate_limited` past it)",
        minimum=1,
    )
    bcrypt_rounds: int = setting("BCRYPT_ROUNDS", 12, "bcrypt cost", minimum=4)
    biometric_challenge_seconds: int = setting(
        "BIOMETRIC_CHALLENGE_SECONDS", 60, "lifetime of a biometric login challenge", minimum=5
    )
    login_attempts_per_ip: int = setting(
        "LOGIN_ATTEMPTS_PER_IP",
        20,
        "failed logins per client address per window (whichever accounts)",
        minimum=1,
    )
    login_attempts_per_account: int = setting(
        "LOGIN_ATTEMPTS_PER_ACCOUNT",
        10,
        "failed logins per account and client address per window (a success from that "
        "address resets it): failures from one address never lock the owner out elsewhere",
        minimum=1,
    )
    login_failures_per_account_everywhere: int = setting(
        "LOGIN_FAILURES_PER_ACCOUNT",
        100,
        "failed logins per account from every address per window: stops a distributed guess",
        minimum=1,
    )
    login_window_seconds: int = setting(
        "LOGIN_WINDOW_SECONDS", 15 * 60, "login rate-limit window", minimum=1
    )


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """Each Socket.IO connection: its event budget, its largest packet, its send queue."""

    events_per_second: float = setting(
        "SOCKET_EVENTS_PER_SECOND", 50.0, "per-connection event rate…"
    )
    event_burst: int = setting("SOCKET_EVENT_BURST", 100, "…and burst", minimum=1)
    max_payload_bytes: int = setting(
        "MAX_SOCKET_PAYLOAD_BYTES", 1024 * 1024, "largest Socket.IO packet accepted", minimum=1024
    )
    max_queued_events: int = setting(
        "MAX_QUEUED_EVENTS",
        1000,
        "events waiting for one client before it is dropped as a slow consumer",
        minimum=10,
    )
    connect_timeout_seconds: int = setting(
        "CONNECT_TIMEOUT_SECONDS",
        10,
        "an Engine.IO session with no Socket.IO session this long (no CONNECT, or a "
        "DISCONNECT without leaving) is closed",
        minimum=1,
    )


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    device_ttl_seconds: int = setting(
        "DEVICE_TTL_SECONDS", 30, "a device of a crashed node goes offline within this", minimum=3
    )
    max_devices_per_user: int = setting(
        "MAX_DEVICES_PER_USER", 10, "live connections per user, across nodes", minimum=1
    )


@dataclass(frozen=True, slots=True)
class MessagingSettings:
    sync_page_limit: int = setting("SYNC_PAGE_LIMIT", 500, "largest `message:sync` page", minimum=1)
    typing_min_interval_ms: int = setting(
        "TYPING_MIN_INTERVAL_MS", 1000, "repeated `typing start` inside this is dropped"
    )
    edit_window_seconds: int = setting(
        "EDIT_WINDOW_SECONDS", 86400, "how long after sending a message may be edited", minimum=0
    )
    max_request_messages: int = setting(
        "MAX_REQUEST_MESSAGES",
        3,
        "messages a sender may put into a message request until its recipient accepts it",
        minimum=1,
    )
    requests_per_day: int = setting(
        "REQUESTS_PER_DAY", 20, "new message requests one user may open in 24 hours", minimum=1
    )


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Calls and the LiveKit instances (composite: see ``integrations.py``)."""

    MORE_VARIABLES = (
        (
            "`LIVEKIT_MAIN_URL`",
            "dev: `ws://127.0.0.1:7880`",
            "where phones connect to the `main` LiveKit instance (general calls, screen "
            "sharing), e.g. `wss://main.livekit.example`",
        ),
        (
            "`LIVEKIT_MAIN_API_KEY` / `LIVEKIT_MAIN_API_SECRET`",
            "dev: `hub-dev` / generated",
            "the key pair that signs `main`'s tokens and verifies its webhooks",
        ),
        (
            "`LIVEKIT_MAIN_API_URL`",
            "http(s) form of the URL",
            "LiveKit's server API (RoomService over Twirp), e.g. a local fake in tests",
        ),
        (
            "`LIVEKIT_MEET_*`, `LIVEKIT_CHAT_*`",
            "as for `MAIN`",
            "the same four for the `meet` (meetings) and `chat` (chat with video) instances",
        ),
    )

    livekit_instances: tuple[LiveKitInstanceConfig, ...] = ()
    # True when no LIVEKIT_<X>_* is set at all: development, one local livekit-server.
    livekit_dev_defaults: bool = True
    livekit_token_seconds: int = setting(
        "LIVEKIT_TOKEN_SECONDS",
        600,
        "lifetime of a LiveKit token the hub mints (one per participant and room)",
        minimum=30,
    )
    ring_seconds: int = setting(
        "CALL_RING_SECONDS", 30, "a call nobody answers within this is `missed`", minimum=1
    )
    max_seconds: int = setting(
        "CALL_MAX_SECONDS",
        4 * 3600,
        "a call still going this long after its answer is ended (so nothing rings or lasts "
        "forever)",
        minimum=60,
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CallSettings:
        return replace(
            read_section(cls, env),
            livekit_instances=livekit_instances_from_env(env),
            livekit_dev_defaults=not any_livekit_instance_variable(env),
        )


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """The gateways (composite: see ``integrations.py``) and the idempotency timings."""

    MORE_VARIABLES = (
        (
            "`STRIPE_SECRET_KEY` / `STRIPE_WEBHOOK_SECRET`",
            "unset",
            "Stripe: the secret key creates PaymentIntents, the webhook secret (`whsec_…`) "
            "verifies `Stripe-Signature`. Both or neither; unset: Stripe payments answer 503 "
            "and `/api/payments/methods` omits Stripe",
        ),
        ("`STRIPE_PUBLISHABLE_KEY`", "unset", "handed to the app by `/api/payments/methods`"),
        (
            "`STRIPE_API_BASE`",
            "`https://api.stripe.com`",
            "where the Stripe library sends requests (a local fake in tests)",
        ),
        (
            "`BRAINTREE_MERCHANT_ID` / `BRAINTREE_PUBLIC_KEY` / `BRAINTREE_PRIVATE_KEY`",
            "unset",
            "Braintree (PayPal): all three or none; unset: PayPal payments answer 503",
        ),
        (
            "`BRAINTREE_ENVIRONMENT`",
            "`sandbox`",
            "`sandbox`, `production`, or an `http://host:port` base URL (a local fake in tests)",
        ),
        (
            "`BRAINTREE_MERCHANT_ACCOUNTS`",
            "unset",
            "the Braintree merchant account per currency, `EUR:band_eur,USD:band_usd`; a PayPal "
            "payment in a currency without one is refused (422 `currency_not_supported`)",
        ),
    )

    stripe: StripeConfig | None = None
    braintree: BraintreeConfig | None = None
    gateway_timeout_seconds: int = setting(
        "PAYMENT_GATEWAY_TIMEOUT_SECONDS", 30, "how long one gateway call may take", minimum=1
    )
    idempotency_stale_seconds: int = setting(
        "PAYMENT_IDEMPOTENCY_STALE_SECONDS",
        90,
        "a payment request whose node died is retaken by a retry after this (must exceed the "
        "gateway timeout)",
        minimum=1,
    )
    idempotency_wait_seconds: int = setting(
        "PAYMENT_IDEMPOTENCY_WAIT_SECONDS",
        40,
        "how long a concurrent retry waits for the first request's answer before a retryable 409",
        minimum=1,
    )
    idempotency_retention_seconds: int = setting(
        "PAYMENT_IDEMPOTENCY_RETENTION_SECONDS",
        86_400,
        "an answered Idempotency-Key is kept this long, then ignored and swept (a retry after "
        "it is a new payment)",
        minimum=1,
    )
    reconcile_seconds: int = setting(
        "PAYMENT_RECONCILE_SECONDS",
        60,
        "how often (and at start-up) one node asks the gateways about payments whose charge "
        "went unanswered (timeout, reset, 5xx) and settles them",
        minimum=1,
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PaymentSettings:
        return replace(
            read_section(cls, env), stripe=stripe_from_env(env), braintree=braintree_from_env(env)
        )


def section_from_env(cls: type[Any], env: Mapping[str, str]) -> Any:
    reader = getattr(cls, "from_env", None)
    return reader(env) if reader is not None else read_section(cls, env)
