"""``message:send``, ``message:sync``, ``message:delivered``, ``message:read``."""

from __future__ import annotations

from handlers.events import Ack, EventContext, EventTable, ok
from handlers.payloads import MarkMessages, SendMessage, SyncMessages
from hub.messaging import Envelope, Sender

events = EventTable()


@events.on("message:send", SendMessage)
async def send_message(ctx: EventContext, body: SendMessage) -> Ack:
    sender = Sender(ctx.user_id, ctx.device_id, ctx.conn_id)
    messaging = ctx.services.messaging
    if body.to is not None:
        assert body.ciphertext is not None and body.nonce is not None
        stored = await messaging.send_direct(sender, body.id, body.to, body.ciphertext, body.nonce)
        ctx.services.metrics.messages.labels(kind="direct").inc()
    else:
        assert body.band is not None and body.envelopes is not None
        envelopes = [Envelope(e.to, e.ciphertext, e.nonce) for e in body.envelopes]
        stored = await messaging.send_band(sender, body.id, body.band, envelopes)
        ctx.services.metrics.messages.labels(kind="band").inc()
    return ok(id=stored.id, ts=stored.ts)


@events.on("message:sync", SyncMessages)
async def sync_messages(ctx: EventContext, body: SyncMessages) -> Ack:
    page = await ctx.services.messaging.sync(ctx.user_id, body.after, body.limit)
    return ok(messages=page.messages, more=page.more)


@events.on("message:delivered", MarkMessages)
async def mark_delivered(ctx: EventContext, body: MarkMessages) -> Ack:
    ts = await ctx.services.messaging.mark(ctx.user_id, ctx.conn_id, body.ids, "delivered")
    return ok(ts=ts)


@events.on("message:read", MarkMessages)
async def mark_read(ctx: EventContext, body: MarkMessages) -> Ack:
    ts = await ctx.services.messaging.mark(ctx.user_id, ctx.conn_id, body.ids, "read")
    return ok(ts=ts)
