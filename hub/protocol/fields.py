"""Field types shared by socket payloads and REST bodies: UUIDs, base64 bytes with bounds.

The bounds are part of the protocol (``docs/protocol.md``), so they live here as constants.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

MAX_CIPHERTEXT_BYTES = 64 * 1024
MIN_CIPHERTEXT_BYTES = 16  # NaCl box adds a 16-byte authenticator
NONCE_BYTES = 24
MAX_ENVELOPES = 255
MAX_IDS_PER_RECEIPT = 500
MAX_PRESENCE_USERS = 200
MAX_DEVICE_ID = 64
MAX_ATTACHMENTS_PER_MESSAGE = 10

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("uuid_type", "must be a UUID string")
    if len(value) > 36 or not _UUID.match(value):
        raise PydanticCustomError("uuid_parsing", "must be a UUID like 0b5c…-…")
    return value.lower()


def base64_field(min_bytes: int, max_bytes: int) -> Any:
    max_chars = 4 * ((max_bytes + 2) // 3)

    exact = min_bytes == max_bytes

    def wrong_length() -> PydanticCustomError:
        # A fixed-size value (nonce, key, signature) of another size is malformed
        # (invalid_payload); a ranged one past its bound is too large (too_large), whether
        # the excess shows before decoding or only after.
        if exact:
            return PydanticCustomError("base64_length", f"must be exactly {min_bytes} bytes")
        return PydanticCustomError("too_long", f"must decode to at most {max_bytes} bytes")

    def decode(value: Any) -> bytes:
        if not isinstance(value, str):
            raise PydanticCustomError("base64_type", "must be a base64 string")
        if len(value) > max_chars:
            raise wrong_length()
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("base64_decode", "is not valid base64") from None
        if len(raw) > max_bytes:
            raise wrong_length()
        if len(raw) < min_bytes:
            if exact:
                raise wrong_length()
            raise PydanticCustomError("base64_length", f"must be {min_bytes} to {max_bytes} bytes")
        return raw

    return BeforeValidator(decode)


UserId = Annotated[str, BeforeValidator(parse_uuid)]
MessageId = Annotated[str, BeforeValidator(parse_uuid)]
BandId = Annotated[str, BeforeValidator(parse_uuid)]
CallId = Annotated[str, BeforeValidator(parse_uuid)]
AttachmentId = Annotated[str, BeforeValidator(parse_uuid)]


def distinct_ids(ids: list[str]) -> list[str]:
    if len(set(ids)) != len(ids):
        raise PydanticCustomError("distinct", "an id is listed twice")
    return ids


# What a message carries of its attachments, in clear (their keys are inside the ciphertext).
AttachmentIds = Annotated[
    list[AttachmentId],
    Field(max_length=MAX_ATTACHMENTS_PER_MESSAGE),
    AfterValidator(distinct_ids),
]
# The LiveKit deployments a call or room can use, and what a call carries.
LiveKitInstanceName = Literal["main", "meet", "chat"]
CallMedia = Literal["audio", "video"]
MAX_ROOM_NAME = 128
Ciphertext = Annotated[bytes, base64_field(MIN_CIPHERTEXT_BYTES, MAX_CIPHERTEXT_BYTES)]
Nonce = Annotated[bytes, base64_field(NONCE_BYTES, NONCE_BYTES)]


PublicKey = Annotated[bytes, base64_field(32, 32)]
Signature = Annotated[bytes, base64_field(64, 64)]


# Text, dates, money and the status names of bands and gigs (REST bodies and views) --


def display_name(value: str) -> str:
    """Names are shown to others: surrounding spaces go, and a blank name is refused."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


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


def never_null(schema: dict[str, Any]) -> None:
    """For a field that may be left out but not sent as null: null out of its schema."""
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    schema.pop("default", None)


def required_text(value: str | None) -> str:
    """A given field that must hold text: null is refused, spaces are trimmed."""
    if value is None:
        raise ValueError("must not be null")
    return display_name(value)


def optional_text(value: str | None) -> str | None:
    """Optional text: surrounding spaces go, and blank means none."""
    if value is None:
        return None
    return value.strip() or None
