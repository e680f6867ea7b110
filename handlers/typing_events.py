"""``typing``: relayed, never stored."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from hub.messaging.typing import TypingService
from hub.messaging.views import TypingState, typing_ack
from hub.protocol.fields import (
    BandId,
    UserId,
)


class Typing(Payload):
    to: UserId | None = None
    band: BandId | None = None
    state: TypingState

    @model_validator(mode="after")
    def one_target(self) -> Typing:
        if (self.to is None) == (self.band is None):
            raise PydanticCustomError("shape", "give either 'to' or 'band'")
        return self


@dataclass(frozen=True, slots=True)
class TypingEventServices:
    """What the ``typing`` handler may call."""

    typing: TypingService


events: EventTable[TypingEventServices] = EventTable()


@events.on("typing", Typing)
async def typing(ctx: EventContext[TypingEventServices], body: Typing) -> Ack:
    relayed = await ctx.services.typing.relay(
        ctx.user_id, to=body.to, band=body.band, state=body.state
    )
    return ok(**typing_ack(relayed))
