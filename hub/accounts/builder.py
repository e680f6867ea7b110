"""Builds the accounts capability: tokens, passwords, login limits and the service."""

from __future__ import annotations

from dataclasses import dataclass

from hub.accounts.passwords import PasswordHasher
from hub.accounts.service import AccountService, LoginLimits
from hub.accounts.tokens import TokenService
from hub.foundation import Foundation
from hub.rate_limits import WindowLimit
from hub.settings.sections import AccountSettings
from storage.redis.challenges import RedisChallengeStore
from storage.sql.users import BiometricKeyStore, RefreshTokenStore


@dataclass(frozen=True, slots=True)
class Accounts:
    tokens: TokenService
    service: AccountService


def build_accounts(settings: AccountSettings, base: Foundation) -> Accounts:
    tokens = TokenService(
        secret=settings.jwt_secret,
        access_seconds=settings.access_token_seconds,
        refresh_seconds=settings.refresh_token_seconds,
        clock=base.clock,
    )
    window = settings.login_window_seconds
    service = AccountService(
        users=base.users,
        refresh_tokens=RefreshTokenStore(base.pool),
        biometric_keys=BiometricKeyStore(base.pool),
        memberships=base.memberships,
        challenges=RedisChallengeStore(base.redis, base.keys),
        tokens=tokens,
        passwords=PasswordHasher(settings.bcrypt_rounds),
        limiter=base.limiter,
        login_limits=LoginLimits(
            per_ip=WindowLimit("login_ip", settings.login_attempts_per_ip, window),
            per_account=WindowLimit("login_account", settings.login_attempts_per_account, window),
        ),
        fanout=base.fanout,
        clock=base.clock,
        challenge_seconds=settings.biometric_challenge_seconds,
    )
    return Accounts(tokens, service)
