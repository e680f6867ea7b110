"""JWT access and refresh tokens (HS256 with ``JWT_SECRET``).

The ``typ`` claim tells them apart, so a refresh token is never accepted where an access
token is due. Both carry their session: access tokens as ``sid`` (with ``authTime``, when the
session last proved a password or a biometric signature, ms), refresh tokens as ``fam`` (the
session is the refresh family: every rotation stays in it, and replaying a spent one revokes
it). An access token without ``sid`` (minted before sessions) is ``token_invalid``: the app
refreshes and gets one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from hub.clock import Clock
from hub.errors import NotAuthenticated

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    auth_time_ms: int
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: str
    family_id: str


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    expires_at_ms: int


def refresh_token_digest(token: str) -> bytes:
    """What the database keeps of a refresh token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).digest()


class TokenService:
    def __init__(
        self, *, secret: str, access_seconds: int, refresh_seconds: int, clock: Clock
    ) -> None:
        if len(secret) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        self._secret = secret
        self._access_seconds = access_seconds
        self._refresh_seconds = refresh_seconds
        self._clock = clock

    @property
    def access_seconds(self) -> int:
        return self._access_seconds

    def mint_access(self, user_id: str, session_id: str, auth_time_ms: int) -> MintedToken:
        now_s = self._clock() // 1000
        exp = now_s + self._access_seconds
        claims = {
            "sub": user_id,
            "typ": "access",
            "sid": session_id,
            "authTime": auth_time_ms,
            "iat": now_s,
            "exp": exp,
        }
        return MintedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), exp * 1000)

    def mint_refresh(self, user_id: str, family_id: str) -> MintedToken:
        now_s = self._clock() // 1000
        exp = now_s + self._refresh_seconds
        claims = {
            "sub": user_id,
            "typ": "refresh",
            "fam": family_id,
            "jti": secrets.token_urlsafe(16),
            "iat": now_s,
            "exp": exp,
        }
        return MintedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), exp * 1000)

    def _decode(self, token: str, expected_type: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub", "typ"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            raise NotAuthenticated(
                "the token is not valid", details={"reason": "token_invalid"}
            ) from None
        if claims.get("typ") != expected_type or not isinstance(claims.get("sub"), str):
            raise NotAuthenticated(
                f"an {expected_type} token is required", details={"reason": "wrong_token_type"}
            )
        exp = claims["exp"]
        # verify_exp is off (our clock decides), so PyJWT no longer checks that exp is a number.
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise NotAuthenticated("the token is not valid", details={"reason": "token_invalid"})
        if int(exp) * 1000 <= self._clock():
            raise NotAuthenticated("the token has expired", details={"reason": "token_expired"})
        return claims

    def verify_access(self, token: str) -> AccessClaims:
        claims = self._decode(token, "access")
        session_id = claims.get("sid")
        auth_time = claims.get("authTime")
        if (
            not isinstance(session_id, str)
            or isinstance(auth_time, bool)
            or not isinstance(auth_time, int)
        ):
            raise NotAuthenticated("the token is not valid", details={"reason": "token_invalid"})
        return AccessClaims(claims["sub"], session_id, auth_time, int(claims["exp"]) * 1000)

    def verify_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, "refresh")
        family = claims.get("fam")
        if not isinstance(family, str):
            raise NotAuthenticated("the token is not valid", details={"reason": "token_invalid"})
        return RefreshClaims(claims["sub"], family)
