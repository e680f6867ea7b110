"""``presence:subscribe`` and ``presence:unsubscribe``."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from hub.presence.service import PresenceService
from hub.presence.views import presence_view
from hub.protocol.fields import MAX_PRESENCE_USERS, UserId


class PresenceUsers(Payload):
    users: list[UserId] = Field(min_length=1, max_length=MAX_PRESENCE_USERS)


@dataclass(frozen=True, slots=True)
class PresenceEventServices:
    """What the ``presence:*`` handlers may call."""

    presence: PresenceService


events: EventTable[PresenceEventServices] = EventTable()


@events.on("presence:subscribe", PresenceUsers)
async def subscribe(ctx: EventContext[PresenceEventServices], body: PresenceUsers) -> Ack:
    presences = await ctx.services.presence.subscribe(ctx.user_id, body.users, ctx.connection)
    return ok(presence=[presence_view(p) for p in presences])


@events.on("presence:unsubscribe", PresenceUsers)
async def unsubscribe(ctx: EventContext[PresenceEventServices], body: PresenceUsers) -> Ack:
    """Nothing to decide: a connection may always stop watching."""
    ctx.connection.unwatch(body.users)
    return ok()
