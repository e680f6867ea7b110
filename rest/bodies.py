"""Typed REST bodies and queries (camelCase keys, as the app sends them)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

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


# Bands and gigs ---------------------------------------------------------------------------

Uuid = Annotated[
    str, BeforeValidator(parse_uuid), WithJsonSchema({"type": "string", "format": "uuid"})
]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_FEE_AMOUNT = 10**12  # minor units: far above any gig, far below bigint


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise PydanticCustomError("date_format", "must be a date as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_value", "is not a date of the calendar") from None


def _clock_time(value: Any) -> Any:
    if value is None or isinstance(value, dt.time):
        return value
    if not isinstance(value, str) or not _CLOCK.match(value):
        raise PydanticCustomError("time_format", "must be a time as HH:MM (00:00 to 23:59)")
    return dt.time.fromisoformat(value)


IsoDate = Annotated[
    dt.date, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})
]
ClockTime = Annotated[
    dt.time,
    BeforeValidator(_clock_time),
    WithJsonSchema({"type": "string", "pattern": _CLOCK.pattern}),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")]
FeeAmount = Annotated[
    int, Field(ge=0, le=MAX_FEE_AMOUNT, description="integer minor units (cents), never a float")
]
BandRole = Literal["owner", "admin", "member"]
GigStatusName = Literal["inquiry", "confirmed", "played", "paid", "cancelled"]


def _never_null(schema: dict[str, Any]) -> None:
    """For a field that may be left out but not sent as null: null out of its schema."""
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    schema.pop("default", None)


def _required_text(value: str | None) -> str:
    """A given field that must hold text: null is refused, spaces are trimmed."""
    if value is None:
        raise ValueError("must not be null")
    return _display_name(value)


def _optional_text(value: str | None) -> str | None:
    """Optional text: surrounding spaces go, and blank means none."""
    if value is None:
        return None
    return value.strip() or None


class CreateBand(Body):
    name: str = Field(min_length=1, max_length=100)
    genre: str | None = Field(default=None, max_length=50)

    @field_validator("name")
    @classmethod
    def name_not_blank(cls, value: str) -> str:
        return _display_name(value)

    @field_validator("genre")
    @classmethod
    def genre_trimmed(cls, value: str | None) -> str | None:
        return _optional_text(value)


class UpdateBand(Body):
    """Only the fields sent change; ``genre: null`` clears the genre."""

    name: str | None = Field(
        default=None, min_length=1, max_length=100, json_schema_extra=_never_null
    )
    genre: str | None = Field(default=None, max_length=50)

    @field_validator("name")
    @classmethod
    def name_not_blank(cls, value: str | None) -> str:
        return _required_text(value)

    @field_validator("genre")
    @classmethod
    def genre_trimmed(cls, value: str | None) -> str | None:
        return _optional_text(value)


class AddMember(Body):
    userId: Uuid
    role: Literal["admin", "member"] = "member"


class ChangeRole(Body):
    """``owner`` hands ownership over (only the owner may); the old owner becomes an admin."""

    role: BandRole


class BandListQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=512)


class CalendarQuery(Query):
    token: str = Field(min_length=1, max_length=128)


class GigFields(Body):
    """What both creating and changing a gig may carry."""

    # Absent means "unchanged"; null is refused for these (and kept out of their schema).
    venueName: str | None = Field(
        default=None, min_length=1, max_length=200, json_schema_extra=_never_null
    )
    date: IsoDate | None = Field(default=None, json_schema_extra=_never_null)
    startTime: ClockTime | None = None
    endTime: ClockTime | None = None
    feeAmount: FeeAmount | None = Field(default=None, json_schema_extra=_never_null)
    currency: Currency | None = Field(default=None, json_schema_extra=_never_null)
    locationAddress: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=4000)

    @field_validator("venueName")
    @classmethod
    def venue_not_blank(cls, value: str | None) -> str:
        return _required_text(value)

    @field_validator("date", "feeAmount", "currency")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    @field_validator("locationAddress", "notes")
    @classmethod
    def text_trimmed(cls, value: str | None) -> str | None:
        return _optional_text(value)


class CreateGig(GigFields):
    bandId: Uuid
    venueName: str = Field(min_length=1, max_length=200)
    date: IsoDate
    feeAmount: FeeAmount = 0
    currency: Currency = "EUR"


class UpdateGig(GigFields):
    """Only the fields sent change; null clears startTime, endTime, locationAddress, notes."""


class SetGigStatus(Body):
    status: GigStatusName


class GigListQuery(Query):
    bandId: Uuid | None = None
    date_from: IsoDate | None = Field(default=None, alias="from", description="inclusive")
    to: IsoDate | None = Field(default=None, description="inclusive")
    status: GigStatusName | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=512)
