"""``presence:subscribe`` and ``presence:unsubscribe``."""

from __future__ import annotations

from pydantic import Field

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from handlers.registry import MAX_WATCHED_USERS
from hub.errors import TooLarge
from hub.protocol.fields import (
    MAX_PRESENCE_USERS,
    UserId,
)


class PresenceUsers(Payload):
    users: list[UserId] = Field(min_length=1, max_length=MAX_PRESENCE_USERS)


events = EventTable()


@events.on("presence:subscribe", PresenceUsers)
async def subscribe(ctx: EventContext, body: PresenceUsers) -> Ack:
    for _attempt in range(3):
        # A revocation (a band membership ended) applied while we checked must not be undone
        # by the watch below: check again when one slipped in between.
        seen = ctx.connections.revocations
        states = await ctx.services.presence.states_for(ctx.user_id, body.users)
        if ctx.connections.revocations == seen:
            break
    if not ctx.connections.watch(ctx.sid, [s.user_id for s in states]):
        raise TooLarge(f"a connection may watch at most {MAX_WATCHED_USERS} users")
    return ok(presence=[s.as_payload() for s in states])


@events.on("presence:unsubscribe", PresenceUsers)
async def unsubscribe(ctx: EventContext, body: PresenceUsers) -> Ack:
    ctx.connections.unwatch(ctx.sid, body.users)
    return ok()
