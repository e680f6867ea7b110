"""Typed payloads of every client event: strict types, no unknown keys, bounded sizes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from hub.fields import (
    MAX_DEVICE_ID,
    MAX_ENVELOPES,
    MAX_IDS_PER_RECEIPT,
    MAX_PRESENCE_USERS,
    BandId,
    Ciphertext,
    MessageId,
    Nonce,
    UserId,
)


class Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Envelope(Payload):
    to: UserId
    ciphertext: Ciphertext
    nonce: Nonce


class SendMessage(Payload):
    """Direct: ``{id, to, ciphertext, nonce}``; band: ``{id, band, envelopes}``."""

    id: MessageId
    to: UserId | None = None
    ciphertext: Ciphertext | None = None
    nonce: Nonce | None = None
    band: BandId | None = None
    envelopes: list[Envelope] | None = Field(default=None, min_length=1, max_length=MAX_ENVELOPES)

    @model_validator(mode="after")
    def one_shape(self) -> SendMessage:
        direct = self.to is not None
        if direct == (self.band is not None):
            raise PydanticCustomError("shape", "give either 'to' or 'band'")
        if direct and (self.ciphertext is None or self.nonce is None or self.envelopes):
            raise PydanticCustomError(
                "shape", "a direct message has 'ciphertext' and 'nonce', no 'envelopes'"
            )
        if not direct and (self.envelopes is None or self.ciphertext or self.nonce):
            raise PydanticCustomError(
                "shape", "a band message has 'envelopes', no top-level 'ciphertext'"
            )
        return self


class SyncMessages(Payload):
    after: int = Field(ge=0, le=2**62)
    limit: int | None = Field(default=None, ge=1, le=1000)


class MarkMessages(Payload):
    ids: list[MessageId] = Field(min_length=1, max_length=MAX_IDS_PER_RECEIPT)


class Typing(Payload):
    to: UserId | None = None
    band: BandId | None = None
    state: Literal["start", "stop"]

    @model_validator(mode="after")
    def one_target(self) -> Typing:
        if (self.to is None) == (self.band is None):
            raise PydanticCustomError("shape", "give either 'to' or 'band'")
        return self


class PresenceUsers(Payload):
    users: list[UserId] = Field(min_length=1, max_length=MAX_PRESENCE_USERS)


class RefreshSession(Payload):
    token: str = Field(min_length=1, max_length=4096)


class Handshake(Payload):
    """The ``auth`` object of the Socket.IO connect."""

    token: str = Field(min_length=1, max_length=4096)
    device: str = Field(min_length=1, max_length=MAX_DEVICE_ID, pattern=r"^[A-Za-z0-9._:-]+$")
