"""Typed REST bodies and queries (camelCase keys, as the app sends them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, field_validator

from hub.fields import Ciphertext, MessageId, Nonce, PublicKey, Signature, UserId, parse_uuid
from hub.passwords import MAX_PASSWORD_BYTES


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Query(BaseModel):
    """Query strings are text: numbers are parsed (lax), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _display_name(value: str) -> str:
    """Names are shown to others: surrounding spaces go, and a blank name is refused."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class Register(Body):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_BYTES)
    name: str = Field(min_length=1, max_length=100)

    @field_validator("password")
    @classmethod
    def fits_bcrypt(cls, value: str) -> str:
        if len(value.encode()) > MAX_PASSWORD_BYTES:
            raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
        return value

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str:
        return _display_name(value)


class Login(Body):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_BYTES * 4)


class Refresh(Body):
    refreshToken: str = Field(min_length=1, max_length=4096)


class Logout(Body):
    refreshToken: str | None = Field(default=None, min_length=1, max_length=4096)


class RegisterBiometricKey(Body):
    publicKey: PublicKey
    deviceName: str = Field(min_length=1, max_length=100)


class BiometricChallengeRequest(Body):
    keyId: Annotated[str, BeforeValidator(parse_uuid)]


class BiometricLogin(Body):
    challengeId: Annotated[str, BeforeValidator(parse_uuid)]
    signature: Signature


class UpdateProfile(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str | None) -> str | None:
        # Same rule as at registration, so an update cannot blank a name out.
        return None if value is None else _display_name(value)


class SetPublicKey(Body):
    publicKey: PublicKey


class SendMessageBody(Body):
    id: MessageId
    to: UserId
    ciphertext: Ciphertext
    nonce: Nonce


class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: int | None = Field(default=None, ge=0)
