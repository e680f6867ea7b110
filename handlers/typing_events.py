"""``typing``: relayed, never stored."""

from __future__ import annotations

from handlers.events import Ack, EventContext, EventTable, ok
from handlers.payloads import Typing

events = EventTable()


@events.on("typing", Typing)
async def typing(ctx: EventContext, body: Typing) -> Ack:
    relayed = await ctx.services.typing.relay(
        ctx.user_id, to=body.to, band=body.band, state=body.state
    )
    return ok(relayed=relayed)
