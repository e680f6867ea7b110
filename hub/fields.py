"""Field types shared by socket payloads and REST bodies: UUIDs, base64 bytes with bounds.

The bounds are part of the protocol (``docs/protocol.md``), so they live here as constants.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

MAX_CIPHERTEXT_BYTES = 64 * 1024
MIN_CIPHERTEXT_BYTES = 16  # NaCl box adds a 16-byte authenticator
NONCE_BYTES = 24
MAX_ENVELOPES = 255
MAX_IDS_PER_RECEIPT = 500
MAX_PRESENCE_USERS = 200
MAX_DEVICE_ID = 64

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
# The LiveKit deployments a call or room can use, and what a call carries.
LiveKitInstanceName = Literal["main", "meet", "chat"]
CallMedia = Literal["audio", "video"]
MAX_ROOM_NAME = 128
Ciphertext = Annotated[bytes, base64_field(MIN_CIPHERTEXT_BYTES, MAX_CIPHERTEXT_BYTES)]
Nonce = Annotated[bytes, base64_field(NONCE_BYTES, NONCE_BYTES)]


PublicKey = Annotated[bytes, base64_field(32, 32)]
Signature = Annotated[bytes, base64_field(64, 64)]
