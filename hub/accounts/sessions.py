"""Sessions: one login of one device, its refresh family, and how it ends.

A session is opened by a login (register, password, biometric). Its device is the one the
login named, or else the ``auth.device`` of its first socket connect; a later connect with
another device id is refused (``device_mismatch``). A new login of a device replaces that
device's earlier session. Refresh rotates inside the session and keeps its ``authTime``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from hub.accounts.tokens import AccessClaims, TokenService, refresh_token_digest
from hub.accounts.views import SessionView, session_view
from hub.clock import Clock
from hub.errors import NotAuthenticated, ReauthRequired, SessionRevoked
from hub.fanout import Fanout, SessionsEnded
from hub.protocol.session_events import RevocationReason
from hub.rate_limits import SharedLimiter, WindowLimit
from storage.sql.sessions import DeviceInfo, RevokedSession, SessionStore
from storage.sql.users import UserRow

__all__ = ["DeviceInfo", "RevokedSessions", "SessionService"]


class RevokedSessions(Protocol):
    """What every node checks per request: sessions revoked while tokens of them may live."""

    async def record(self, session_ids: Collection[str], reason: str, ttl_seconds: int) -> None: ...

    async def is_revoked(self, session_id: str) -> bool: ...


class SessionService:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        revoked: RevokedSessions,
        tokens: TokenService,
        fanout: Fanout,
        clock: Clock,
        refresh_grace_seconds: int,
        reauth_max_age_seconds: int,
        limiter: SharedLimiter,
        connect_limit: WindowLimit,
    ) -> None:
        self._sessions = sessions
        self._revoked = revoked
        self._tokens = tokens
        self._fanout = fanout
        self._clock = clock
        self._grace_ms = refresh_grace_seconds * 1000
        self._reauth_ms = reauth_max_age_seconds * 1000
        self._limiter = limiter
        self._connect_limit = connect_limit
        # Told the user id when a device was added or removed (set by the builder: the device
        # service pushes ``devices:changed``).
        self.devices_changed: Callable[[str], Awaitable[None]] | None = None

    def require_recent(self, claims: AccessClaims) -> None:
        """What hands over the account needs a password or signature checked lately."""
        if self._clock() - claims.auth_time_ms > self._reauth_ms:
            raise ReauthRequired(
                "confirm it is you: POST /api/auth/reauth, then retry with the new token",
                details={"maxAgeSeconds": self._reauth_ms // 1000},
            )

    async def renew(self, claims: AccessClaims) -> SessionView:
        """After a password or signature check: a new pair of this session, ``authTime`` now."""
        now = self._clock()
        refresh = self._tokens.mint_refresh(claims.user_id, claims.session_id)
        renewed = await self._sessions.renew_auth(
            claims.session_id,
            claims.user_id,
            refresh_token_digest(refresh.token),
            refresh.expires_at_ms,
            now,
        )
        if not renewed:
            raise SessionRevoked("this session was closed; log in again")
        access = self._tokens.mint_access(claims.user_id, claims.session_id, now)
        return session_view(access.token, refresh.token, access.expires_at_ms, None)

    async def device_of(self, claims: AccessClaims) -> str | None:
        """The device of the token's session (None until its first connect binds one)."""
        session = await self._sessions.get(claims.session_id)
        if session is None:
            raise SessionRevoked("this session was closed; log in again")
        return session.device_id

    async def _announce(self, user_id: str) -> None:
        if self.devices_changed is not None:
            await self.devices_changed(user_id)

    async def is_revoked(self, claims: AccessClaims) -> bool:
        """Whether the token's session was revoked (one Redis round trip)."""
        return await self._revoked.is_revoked(claims.session_id)

    async def open(
        self, user_id: str, user: UserRow | None, device: DeviceInfo | None
    ) -> SessionView:
        """A new session whose password or signature was checked just now."""
        session_id = str(uuid.uuid4())
        now = self._clock()
        refresh = self._tokens.mint_refresh(user_id, session_id)
        opened = await self._sessions.open(
            session_id=session_id,
            user_id=user_id,
            device=device,
            token_hash=refresh_token_digest(refresh.token),
            expires_at=refresh.expires_at_ms,
            now_ms=now,
        )
        await self.ended(opened.replaced, "replaced")
        if device is not None:
            await self._announce(user_id)
        access = self._tokens.mint_access(user_id, session_id, now)
        return session_view(access.token, refresh.token, access.expires_at_ms, user, opened.device)

    async def refresh(self, refresh_token: str) -> SessionView:
        claims = self._tokens.verify_refresh(refresh_token)
        new_refresh = self._tokens.mint_refresh(claims.user_id, claims.family_id)
        rotation = await self._sessions.rotate(
            refresh_token_digest(refresh_token),
            refresh_token_digest(new_refresh.token),
            new_refresh.expires_at_ms,
            self._clock(),
            self._grace_ms,
        )
        if rotation.outcome == "reused":
            if rotation.revoked is not None:
                await self.ended([rotation.revoked], "token_reused")
            raise NotAuthenticated(
                "this refresh token was already used; its session is now closed",
                details={"reason": "token_reused"},
            )
        if rotation.outcome not in ("rotated", "grace") or rotation.session is None:
            raise NotAuthenticated(
                "the refresh token is not valid", details={"reason": rotation.outcome}
            )
        session = rotation.session
        access = self._tokens.mint_access(session.user_id, session.id, session.auth_time)
        return session_view(access.token, new_refresh.token, access.expires_at_ms, None)

    async def bind_device(self, claims: AccessClaims, device_id: str) -> None:
        """At a socket connect: within the user's connect rate, the session must be live,
        and its device this one (a session without a device takes this one)."""
        await self._limiter.check(self._connect_limit, claims.user_id, "connects")
        binding = await self._sessions.bind(
            claims.session_id, claims.user_id, device_id, self._clock()
        )
        if binding.outcome == "revoked":
            raise SessionRevoked("this session was closed; log in again")
        if binding.outcome == "mismatch":
            raise NotAuthenticated(
                "this session belongs to another device", details={"reason": "device_mismatch"}
            )
        await self.ended(binding.replaced, "replaced")
        if binding.outcome == "bound":
            await self._announce(claims.user_id)

    async def revoke_others(self, claims: AccessClaims, reason: RevocationReason) -> None:
        """Every session of the user but this one (a password change)."""
        revoked = await self._sessions.revoke_all(
            claims.user_id, reason, self._clock(), keep=claims.session_id
        )
        await self.ended(revoked, reason)
        await self._announce(claims.user_id)

    async def logout(self, claims: AccessClaims, *, everywhere: bool) -> None:
        now = self._clock()
        if everywhere:
            self.require_recent(claims)
            revoked = await self._sessions.revoke_all(claims.user_id, "logout_all", now)
            await self.ended(revoked, "logout_all")
            return
        one = await self._sessions.revoke(claims.session_id, claims.user_id, "logout", now)
        if one is None:
            raise SessionRevoked("this session was already closed")
        await self.ended([one], "logout")
        await self._announce(claims.user_id)

    async def ended(self, revoked: list[RevokedSession], reason: RevocationReason) -> None:
        """After the database: the record every node checks per request (so every access
        token of these sessions is refused at once), then their live sockets, wherever they
        are, are told and disconnected."""
        if not revoked:
            return
        await self._revoked.record(
            [r.id for r in revoked], reason, self._tokens.access_seconds + 60
        )
        by_user: dict[str, list[str]] = {}
        for r in revoked:
            by_user.setdefault(r.user_id, []).append(r.id)
        for user_id, session_ids in by_user.items():
            await self._fanout.end_sessions(
                SessionsEnded(user_id, session_ids, "session:revoked", reason)
            )
