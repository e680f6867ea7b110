"""``call:invite``, ``call:accept``, ``call:decline``, ``call:cancel``, ``call:hangup``."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from hub.calls.service import CallParty, CallService
from hub.calls.views import accept_ack, invite_ack
from hub.protocol.fields import BandId, CallId, CallMedia, LiveKitInstanceName, UserId


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


@dataclass(frozen=True, slots=True)
class CallEventServices:
    """What the ``call:*`` handlers may call."""

    calls: CallService


events: EventTable[CallEventServices] = EventTable()


def _party(ctx: EventContext[CallEventServices]) -> CallParty:
    return CallParty(ctx.user_id, ctx.conn_id)


@events.on("call:invite", InviteCall)
async def invite(ctx: EventContext[CallEventServices], body: InviteCall) -> Ack:
    invitation = await ctx.services.calls.invite(
        _party(ctx), to=body.to, band=body.band, instance=body.instance, media=body.media
    )
    return invite_ack(invitation.call, invitation.url, invitation.grant)


@events.on("call:accept", CallAction)
async def accept(ctx: EventContext[CallEventServices], body: CallAction) -> Ack:
    return accept_ack(await ctx.services.calls.accept(_party(ctx), body.call))


@events.on("call:decline", CallAction)
async def decline(ctx: EventContext[CallEventServices], body: CallAction) -> Ack:
    await ctx.services.calls.decline(_party(ctx), body.call)
    return ok()


@events.on("call:cancel", CallAction)
async def cancel(ctx: EventContext[CallEventServices], body: CallAction) -> Ack:
    await ctx.services.calls.cancel(_party(ctx), body.call)
    return ok()


@events.on("call:hangup", CallAction)
async def hangup(ctx: EventContext[CallEventServices], body: CallAction) -> Ack:
    await ctx.services.calls.hangup(_party(ctx), body.call)
    return ok()
