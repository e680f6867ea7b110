"""TODO docstring"""

from __future__ import annotations

from pydantic import Field

from hub.protocol.models import View


class PublicUserView(View):
    id: str
    email: str
    name: str


class SessionView(View):
    accessToken: str
    refreshToken: str
    expiresAt: int = Field(description="access token expiry, ms since the epoch")
    user: PublicUserView | None = Field(default=None, description="absent on refresh")


class BiometricKeyView(View):
    keyId: str


class BiometricChallengeView(View):
    challengeId: str
    challenge: str = Field(description="32 random bytes, base64: sign them")
    expiresAt: int


class ProfileView(View):
    id: str
    name: str
    publicKey: str | None
    email: str | None = Field(default=None, description="only in your own profile")


class PublicKeyView(View):
    userId: str
    publicKey: str | None
    updatedAt: int | None
