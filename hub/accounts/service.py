"""Accounts: registration, login, token rotation, biometric login, profiles and public keys.

The service answers with views (``hub/accounts/views.py``) and decides in them what the
viewer may see: the email only in your own profile and your own login.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from typing import Protocol

import nacl.exceptions
import nacl.signing

from hub.accounts.passwords import PasswordHasher
from hub.accounts.sessions import SessionService
from hub.accounts.tokens import AccessClaims
from hub.accounts.views import (
    BiometricChallengeView,
    BiometricKeysView,
    BiometricKeyView,
    ProfileView,
    PublicKeyView,
    SessionView,
    biometric_challenge_view,
    biometric_key_view,
    biometric_keys_view,
    keys_changed_event,
    profile_view,
    public_key_view,
)
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, InvalidPayload, NotAuthenticated, NotFound
from hub.fanout import Delivery, Fanout
from hub.rate_limits import SharedLimiter, WindowLimit
from storage.sql.bands import MembershipStore
from storage.sql.sessions import DeviceInfo
from storage.sql.users import BiometricKeyStore, UserRow, UserStore


class ChallengeStore(Protocol):
    """Single-use biometric challenges with a time to live."""

    async def put(self, challenge_id: str, value: str, ttl_seconds: int) -> None: ...

    async def take(self, challenge_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """Failed logins: per client address, per account and address (a success resets it),
    and per account from every address (higher: stops a distributed guess)."""

    per_ip: WindowLimit
    per_account: WindowLimit
    per_account_everywhere: WindowLimit


class AccountService:
    def __init__(
        self,
        *,
        users: UserStore,
        sessions: SessionService,
        biometric_keys: BiometricKeyStore,
        memberships: MembershipStore,
        challenges: ChallengeStore,
        passwords: PasswordHasher,
        limiter: SharedLimiter,
        login_limits: LoginLimits,
        fanout: Fanout,
        clock: Clock,
        challenge_seconds: int,
    ) -> None:
        self._users = users
        self._sessions = sessions
        self._biometric = biometric_keys
        self._memberships = memberships
        self._challenges = challenges
        self._passwords = passwords
        self._limiter = limiter
        self._login_limits = login_limits
        self._fanout = fanout
        self._clock = clock
        self._challenge_seconds = challenge_seconds

    async def register(
        self, *, email: str, password: str, name: str, device: DeviceInfo | None = None
    ) -> SessionView:
        password_hash = await self._passwords.hash(password)
        user = await self._users.create(email, password_hash, name)
        if user is None:
            raise Conflict("an account with this email already exists")
        return await self._sessions.open(user.id, user, device)

    async def login(
        self, *, email: str, password: str, client_ip: str, device: DeviceInfo | None = None
    ) -> SessionView:
        limits, limiter = self._login_limits, self._limiter
        account = email.lower()
        here = f"{account}|{client_ip}"
        await limiter.refuse_if_reached(limits.per_ip, client_ip, "failed logins")
        await limiter.refuse_if_reached(limits.per_account, here, "failed logins")
        await limiter.refuse_if_reached(limits.per_account_everywhere, account, "failed logins")
        credentials = await self._users.credentials_by_email(email)
        ok = await self._passwords.verify(
            password, credentials.password_hash if credentials else None
        )
        if not ok or credentials is None:
            await limiter.record(limits.per_ip, client_ip)
            await limiter.record(limits.per_account, here)
            await limiter.record(limits.per_account_everywhere, account)
            raise NotAuthenticated("wrong email or password")
        await limiter.reset(limits.per_account, here)
        user = await self._users.get(credentials.id)
        return await self._sessions.open(credentials.id, user, device)

    async def change_password(self, claims: AccessClaims, current: str, new: str) -> None:
        """With the current password: the new one, and every other device is logged out."""
        await self._limiter.check(
            self._login_limits.per_account, "user:" + claims.user_id, "password attempts"
        )
        stored = await self._users.password_hash_of(claims.user_id)
        if not await self._passwords.verify(current, stored):
            raise NotAuthenticated(
                "the current password is wrong", details={"reason": "wrong_password"}
            )
        await self._users.set_password_hash(claims.user_id, await self._passwords.hash(new))
        await self._sessions.revoke_others(claims, "password_changed")

    # Biometric login: the phone keeps an Ed25519 key that the biometric unlocks; the hub
    # only ever sees the verify key and signatures over its own single-use challenges.

    async def reauth_with_password(self, claims: AccessClaims, password: str) -> SessionView:
        """The password again: a new pair of this session with ``authTime`` now."""
        await self._limiter.check(
            self._login_limits.per_account, "user:" + claims.user_id, "password attempts"
        )
        stored = await self._users.password_hash_of(claims.user_id)
        if not await self._passwords.verify(password, stored):
            raise NotAuthenticated("the password is wrong", details={"reason": "wrong_password"})
        return await self._sessions.renew(claims)

    async def reauth_with_signature(
        self, claims: AccessClaims, challenge_id: str, signature: bytes
    ) -> SessionView:
        """A biometric challenge signed by one of the caller's own keys, as for login."""
        key_id = await self._check_signature(challenge_id, signature)
        key = await self._biometric.get(key_id)
        if key is None or key.user_id != claims.user_id:
            raise NotAuthenticated("the signature does not match")
        return await self._sessions.renew(claims)

    async def register_biometric_key(
        self, claims: AccessClaims, verify_key: bytes, device_name: str
    ) -> BiometricKeyView:
        """Needs a recent authentication; the key belongs to this session's device."""
        try:
            nacl.signing.VerifyKey(verify_key)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise InvalidPayload("not an Ed25519 public key") from None
        self._sessions.require_recent(claims)
        device_id = await self._sessions.device_of(claims)
        user_id = claims.user_id
        key_id = await self._biometric.add(
            user_id, verify_key, device_name, self._clock(), device_id
        )
        if key_id is None:
            raise Conflict("this key is already registered")
        return biometric_key_view(key_id)

    async def biometric_keys(self, user_id: str) -> BiometricKeysView:
        return biometric_keys_view(await self._biometric.of_user(user_id))

    async def remove_biometric_key(self, user_id: str, key_id: str) -> None:
        if not await self._biometric.delete(key_id, user_id):
            raise NotFound("no such biometric key")

    async def biometric_challenge(self, key_id: str) -> BiometricChallengeView:
        challenge = base64.b64encode(secrets.token_bytes(32)).decode()
        challenge_id = str(uuid.uuid4())
        await self._challenges.put(challenge_id, f"{key_id}:{challenge}", self._challenge_seconds)
        return biometric_challenge_view(
            challenge_id, challenge, self._clock() + self._challenge_seconds * 1000
        )

    async def biometric_login(
        self,
        challenge_id: str,
        signature: bytes,
        client_ip: str,
        device: DeviceInfo | None = None,
    ) -> SessionView:
        await self._limiter.check(self._login_limits.per_ip, client_ip, "login attempts")
        key_id = await self._check_signature(challenge_id, signature)
        key = await self._biometric.get(key_id)
        if key is None:
            raise NotAuthenticated("this biometric key is no longer registered")
        await self._biometric.touch(key_id, self._clock())
        if device is None and key.device_id is not None:
            # The key belongs to its device: a login with it is that device's new session.
            device = DeviceInfo(key.device_id, None, None)
        user = await self._users.get(key.user_id)
        return await self._sessions.open(key.user_id, user, device)

    async def _check_signature(self, challenge_id: str, signature: bytes) -> str:
        """The key id whose signature over the challenge this is (the challenge is spent)."""
        stored = await self._challenges.take(challenge_id)
        if stored is None:
            raise NotAuthenticated("unknown or expired challenge", details={"reason": "challenge"})
        key_id, challenge = stored.split(":", 1)
        key = await self._biometric.get(key_id)
        if key is None:
            raise NotAuthenticated("this biometric key is no longer registered")
        try:
            nacl.signing.VerifyKey(key.public_key).verify(base64.b64decode(challenge), signature)
        except nacl.exceptions.BadSignatureError:
            raise NotAuthenticated("the signature does not match") from None
        return key_id

    # Profiles and public keys.

    async def _user(self, user_id: str) -> UserRow:
        user = await self._users.get(user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def profile(self, viewer_id: str, user_id: str) -> ProfileView:
        """Anyone signed in sees a user's id, name and public key; only the owner the email."""
        user = await self._user(user_id)
        return profile_view(user, with_email=viewer_id == user.id)

    async def update_profile(self, actor_id: str, user_id: str, *, name: str | None) -> ProfileView:
        if actor_id != user_id:
            raise Forbidden("only the owner may change a profile")
        user = await self._users.update_profile(user_id, name=name)
        if user is None:
            raise NotFound("no such user")
        return profile_view(user, with_email=True)

    async def public_key(self, user_id: str) -> PublicKeyView:
        user = await self._user(user_id)
        if user.public_key is None:
            raise NotFound("this user has no public key yet")
        return public_key_view(user)

    async def set_public_key(
        self, claims: AccessClaims, user_id: str, public_key: bytes
    ) -> PublicKeyView:
        """Store the key and tell everyone who shares a band or conversation with the owner.
        Replacing a key already set needs a recent authentication (messages to come would be
        encrypted to it)."""
        if claims.user_id != user_id:
            raise Forbidden("only the owner may change a public key")
        encoded = base64.b64encode(public_key).decode()
        current = await self._user(user_id)
        if current.public_key is not None and current.public_key != encoded:
            self._sessions.require_recent(claims)
        now = self._clock()
        user = await self._users.set_public_key(user_id, encoded, now)
        if user is None:
            raise NotFound("no such user")
        contacts = await self._memberships.contacts(user_id)
        event = keys_changed_event(user_id, encoded, user.public_key_at or now).wire()
        await self._fanout.deliver([Delivery(c, "keys:changed", event) for c in contacts])
        return public_key_view(user)
