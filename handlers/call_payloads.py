"""Typed payloads of the call events: strict types, no unknown keys."""

from __future__ import annotations

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from handlers.payloads import Payload
from hub.fields import BandId, CallId, CallMedia, LiveKitInstanceName, UserId


class InviteCall(Payload):
    """``{to, instance, media}`` rings one user; ``{band, instance, media}`` the band."""

    to: UserId | None = None
    band: BandId | None = None
    instance: LiveKitInstanceName
    media: CallMedia

    @model_validator(mode="after")
    def one_target(self) -> InviteCall:
        if (self.to is None) == (self.band is None):
            raise PydanticCustomError("shape", "give either 'to' or 'band'")
        return self


class CallAction(Payload):
    """``{call}``: accept, decline, cancel or hang up that call."""

    call: CallId
