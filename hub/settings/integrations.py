"""Settings of the services the hub talks to, each made of several variables that only make
sense together: the three LiveKit instances, Stripe and Braintree.

A half-configured service is an error at start-up rather than a surprise at its first use;
a service with none of its variables is simply not configured (refused when used).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hub.settings.variables import SettingsError

LIVEKIT_INSTANCE_NAMES = ("main", "meet", "chat")
LIVEKIT_DEV_URL = "ws://127.0.0.1:7880"
LIVEKIT_DEV_API_KEY = "hub-dev"
STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"
BRAINTREE_NAMED_ENVIRONMENTS = ("sandbox", "production")


def _text(env: Mapping[str, str], name: str, default: str = "") -> str:
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
    """Each instance that has ``LIVEKIT_<X>_URL``, ``_API_KEY`` and ``_API_SECRET``."""
    instances = []
    for name in LIVEKIT_INSTANCE_NAMES:
        prefix = f"LIVEKIT_{name.upper()}_"
        url = _text(env, prefix + "URL")
        key = _text(env, prefix + "API_KEY")
        secret = _text(env, prefix + "API_SECRET")
        if not (url or key or secret):
            continue
        if not (url and key and secret):
            raise SettingsError(
                f"LiveKit instance {name!r} needs {prefix}URL, {prefix}API_KEY and "
                f"{prefix}API_SECRET together"
            )
        api_url = _text(env, prefix + "API_URL", _livekit_api_url(url))
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


def any_livekit_instance_variable(env: Mapping[str, str]) -> bool:
    prefixes = tuple(f"LIVEKIT_{name.upper()}_" for name in LIVEKIT_INSTANCE_NAMES)
    return any(key.startswith(prefixes) and value for key, value in env.items())


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
    # currency → Braintree merchant account: a sale is charged in its account's currency.
    merchant_accounts: tuple[tuple[str, str], ...] = ()


def stripe_from_env(env: Mapping[str, str]) -> StripeConfig | None:
    """None when ``STRIPE_SECRET_KEY`` is unset; a key without its webhook secret is refused,
    since its payments could never leave ``pending``."""
    secret = _text(env, "STRIPE_SECRET_KEY")
    webhook_secret = _text(env, "STRIPE_WEBHOOK_SECRET")
    if not secret and not webhook_secret:
        return None
    if not (secret and webhook_secret):
        raise SettingsError("Stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET together")
    api_base = _text(env, "STRIPE_API_BASE", STRIPE_DEFAULT_API_BASE).rstrip("/")
    if not api_base.startswith(("https://", "http://")):
        raise SettingsError(f"STRIPE_API_BASE must be an http(s) URL, got {api_base!r}")
    return StripeConfig(secret, webhook_secret, _text(env, "STRIPE_PUBLISHABLE_KEY"), api_base)


def braintree_from_env(env: Mapping[str, str]) -> BraintreeConfig | None:
    """None when none of the three credentials is set; some but not all is an error."""
    merchant = _text(env, "BRAINTREE_MERCHANT_ID")
    public = _text(env, "BRAINTREE_PUBLIC_KEY")
    private = _text(env, "BRAINTREE_PRIVATE_KEY")
    if not (merchant or public or private):
        return None
    if not (merchant and public and private):
        raise SettingsError(
            "Braintree needs BRAINTREE_MERCHANT_ID, BRAINTREE_PUBLIC_KEY and "
            "BRAINTREE_PRIVATE_KEY together"
        )
    environment = _text(env, "BRAINTREE_ENVIRONMENT", "sandbox").rstrip("/")
    if environment not in BRAINTREE_NAMED_ENVIRONMENTS and not environment.startswith("http://"):
        raise SettingsError(
            "BRAINTREE_ENVIRONMENT must be sandbox, production or an http://host:port URL, "
            f"got {environment!r}"
        )
    accounts = merchant_accounts_from_env(_text(env, "BRAINTREE_MERCHANT_ACCOUNTS"))
    return BraintreeConfig(merchant, public, private, environment, accounts)


def merchant_accounts_from_env(value: str) -> tuple[tuple[str, str], ...]:
    """``EUR:band_eur,USD:band_usd`` → ``(("EUR", "band_eur"), ("USD", "band_usd"))``."""
    accounts: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        currency, _, account = entry.partition(":")
        currency, account = currency.strip(), account.strip()
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper() or not account:
            raise SettingsError(
                "BRAINTREE_MERCHANT_ACCOUNTS must be CUR:merchant_account pairs separated by "
                f"commas (EUR:band_eur,USD:band_usd), got {entry!r}"
            )
        if currency in accounts:
            raise SettingsError(f"BRAINTREE_MERCHANT_ACCOUNTS names {currency} twice")
        accounts[currency] = account
    return tuple(sorted(accounts.items()))
