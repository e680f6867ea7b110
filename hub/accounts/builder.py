"""Builds the accounts capability: tokens, sessions, passwords, login limits, the service."""

from __future__ import annotations

from dataclasses import dataclass

from hub.accounts.devices import DeviceService, OnlineDevices, PushStatuses
from hub.accounts.passwords import PasswordHasher
from hub.accounts.service import AccountService, LoginLimits
from hub.accounts.sessions import SessionService
from hub.accounts.tokens import TokenService
from hub.foundation import Foundation
from hub.rate_limits import WindowLimit
from hub.settings.sections import AccountSettings
from storage.redis.challenges import RedisChallengeStore
from storage.redis.sessions import RedisRevokedSessions
from storage.sql.sessions import SessionStore
from storage.sql.users import BiometricKeyStore


@dataclass(frozen=True, slots=True)
class Accounts:
    tokens: TokenService
    service: AccountService
    sessions: SessionService
    devices: DeviceService


def build_accounts(
    settings: AccountSettings, base: Foundation, online: OnlineDevices, pushes: PushStatuses
) -> Accounts:
    tokens = TokenService(
        secret=settings.jwt_secret,
        access_seconds=settings.access_token_seconds,
        refresh_seconds=settings.refresh_token_seconds,
        clock=base.clock,
    )
    store = SessionStore(base.pool)
    sessions = SessionService(
        sessions=store,
        revoked=RedisRevokedSessions(base.redis, base.keys),
        tokens=tokens,
        fanout=base.fanout,
        clock=base.clock,
        refresh_grace_seconds=settings.refresh_reuse_grace_seconds,
        reauth_max_age_seconds=settings.reauth_max_age_seconds,
        limiter=base.limiter,
        connect_limit=WindowLimit("connects", settings.connects_per_minute, 60),
    )
    devices = DeviceService(
        store=store,
        online=online,
        pushes=pushes,
        sessions=sessions,
        fanout=base.fanout,
        clock=base.clock,
    )
    sessions.devices_changed = devices.announce
    window = settings.login_window_seconds
    service = AccountService(
        users=base.users,
        sessions=sessions,
        biometric_keys=BiometricKeyStore(base.pool),
        memberships=base.memberships,
        challenges=RedisChallengeStore(base.redis, base.keys),
        passwords=PasswordHasher(settings.bcrypt_rounds),
        limiter=base.limiter,
        login_limits=LoginLimits(
            per_ip=WindowLimit("login_ip", settings.login_attempts_per_ip, window),
            per_account=WindowLimit("login_account", settings.login_attempts_per_account, window),
            per_account_everywhere=WindowLimit(
                "login_account_all", settings.login_failures_per_account_everywhere, window
            ),
        ),
        fanout=base.fanout,
        clock=base.clock,
        challenge_seconds=settings.biometric_challenge_seconds,
    )
    return Accounts(tokens, service, sessions, devices)
