"""Push settings: the APNs token key, the FCM service account, where both providers are, and
how the shared push queue retries and coalesces.

A provider is configured when all its variables are set and unused when none is; half of
one is an error at start-up (``PushSettings.check``), not a surprise at the first push.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.settings.variables import SettingsError, parse_optional, parse_url, read_section, setting

APNS_PRODUCTION_URL = "https://api.push.apple.com"
APNS_SANDBOX_URL = "https://api.sandbox.push.apple.com"


@dataclass(frozen=True, slots=True)
class PushSettings:
    apns_key_file: str | None = setting(
        "APNS_KEY_FILE",
        None,
        "the APNs token-signing key (`AuthKey_<id>.p8`, ES256); with `APNS_KEY_ID`, "
        "`APNS_TEAM_ID` and `APNS_TOPIC`. Unset: no APNs pushes, registering one answers 503",
        shown="unset",
        parse=parse_optional,
    )
    apns_key_id: str | None = setting(
        "APNS_KEY_ID", None, "the key's id (the JWT's `kid`)", shown="unset", parse=parse_optional
    )
    apns_team_id: str | None = setting(
        "APNS_TEAM_ID",
        None,
        "the Apple developer team id (the JWT's `iss`)",
        shown="unset",
        parse=parse_optional,
    )
    apns_topic: str | None = setting(
        "APNS_TOPIC",
        None,
        "the app's bundle id (`apns-topic`); VoIP pushes go to `<APNS_TOPIC>.voip`",
        shown="unset",
        parse=parse_optional,
    )
    apns_url: str | None = setting(
        "APNS_URL",
        None,
        "the APNs host for both environments (default `https://api.push.apple.com`, sandbox "
        "`https://api.sandbox.push.apple.com`); a local fake in tests",
        shown="Apple's",
        parse=parse_optional,
    )
    fcm_credentials_file: str | None = setting(
        "FCM_CREDENTIALS_FILE",
        None,
        "the Firebase service-account JSON (`project_id`, `client_email`, `private_key`, "
        "`token_uri`). Unset: no FCM pushes, registering one answers 503",
        shown="unset",
        parse=parse_optional,
    )
    fcm_url: str = setting(
        "FCM_URL",
        "https://fcm.googleapis.com",
        "where FCM HTTP v1 `messages:send` is (a local fake in tests)",
        parse=parse_url,
    )
    ca_file: str | None = setting(
        "PUSH_CA_FILE",
        None,
        "extra CA certificates (PEM) trusted for the providers' TLS, besides the system's",
        shown="unset",
        parse=parse_optional,
    )
    coalesce_ms: int = setting(
        "PUSH_COALESCE_MS",
        3000,
        "at most one message push per device and conversation in this window (the last of a "
        "burst follows at its end with the current badge)",
        minimum=0,
    )
    max_attempts: int = setting(
        "PUSH_MAX_ATTEMPTS",
        5,
        "tries per push (429, 5xx, connection errors are retried with exponential backoff, "
        "honouring `Retry-After`); then it is dropped, logged and counted",
        minimum=1,
    )
    retry_base_ms: int = setting(
        "PUSH_RETRY_BASE_MS", 1000, "the first retry's delay; doubled each time", minimum=10
    )
    timeout_seconds: float = setting(
        "PUSH_TIMEOUT_SECONDS", 10.0, "how long one provider request may take", minimum=0.1
    )
    claim_idle_ms: int = setting(
        "PUSH_CLAIM_IDLE_MS",
        30_000,
        "a push a node took and did not finish within this (the node died) is taken over by "
        "another node (must exceed `PUSH_TIMEOUT_SECONDS`)",
        minimum=100,
    )
    concurrency: int = setting(
        "PUSH_CONCURRENCY", 64, "provider requests in flight per node", minimum=1
    )
    worker: bool = setting(
        "PUSH_WORKER",
        True,
        "this node sends pushes from the shared queue; `off` keeps a busy socket node to "
        "relaying (it still queues its pushes, and the nodes with `on` send them)",
    )

    @property
    def apns_configured(self) -> bool:
        return all((self.apns_key_file, self.apns_key_id, self.apns_team_id, self.apns_topic))

    @property
    def fcm_configured(self) -> bool:
        return self.fcm_credentials_file is not None

    @property
    def enabled(self) -> bool:
        return self.apns_configured or self.fcm_configured

    def apns_base_url(self, environment: str) -> str:
        if self.apns_url:
            return self.apns_url.rstrip("/")
        return APNS_SANDBOX_URL if environment == "sandbox" else APNS_PRODUCTION_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PushSettings:
        section = read_section(cls, env)
        apns = (
            section.apns_key_file,
            section.apns_key_id,
            section.apns_team_id,
            section.apns_topic,
        )
        if any(apns) and not all(apns):
            raise SettingsError(
                "APNs needs APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC together"
            )
        if section.claim_idle_ms <= section.timeout_seconds * 1000:
            raise SettingsError("PUSH_CLAIM_IDLE_MS must exceed PUSH_TIMEOUT_SECONDS")
        return section
