"""``message:send``, ``message:edit``, ``message:delete``, ``message:sync``, ``message:delivered``,
``message:read``.

The acks' shapes (after ``ok``) are built in ``hub/messaging/views.py``, beside their models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from handlers.dispatch import Ack, EventContext, EventTable, Payload, ok
from hub.messaging.service import Envelope, MessagingService, Relation, Sender
from hub.messaging.views import delete_ack, marked, sent_message
from hub.metrics import HubMetrics
from hub.protocol.fields import (
    MAX_ENVELOPES,
    MAX_IDS_PER_RECEIPT,
    AttachmentIds,
    BandId,
    Ciphertext,
    MessageId,
    Nonce,
    UserId,
)


class BandEnvelope(Payload):
    to: UserId
    ciphertext: Ciphertext
    nonce: Nonce


class RelatesTo(Payload):
    type: Literal["reaction", "reply"]
    id: MessageId


class SendMessage(Payload):
    """Direct: ``{id, to, ciphertext, nonce}``; band: ``{id, band, envelopes}``; either with
    an optional ``relatesTo`` (a reaction or a reply) and ``attachments`` (uploaded ids)."""

    id: MessageId
    to: UserId | None = None
    ciphertext: Ciphertext | None = None
    nonce: Nonce | None = None
    band: BandId | None = None
    envelopes: list[BandEnvelope] | None = Field(
        default=None, min_length=1, max_length=MAX_ENVELOPES
    )
    relatesTo: RelatesTo | None = None
    attachments: AttachmentIds | None = None

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


class EditMessage(Payload):
    """Direct: ``{id, replaces, ciphertext, nonce}``; band: ``{id, replaces, envelopes}``."""

    id: MessageId
    replaces: MessageId
    ciphertext: Ciphertext | None = None
    nonce: Nonce | None = None
    envelopes: list[BandEnvelope] | None = Field(
        default=None, min_length=1, max_length=MAX_ENVELOPES
    )
    attachments: AttachmentIds | None = None

    @model_validator(mode="after")
    def one_shape(self) -> EditMessage:
        direct = self.ciphertext is not None or self.nonce is not None
        if direct and (self.ciphertext is None or self.nonce is None or self.envelopes):
            raise PydanticCustomError(
                "shape", "a direct edit has 'ciphertext' and 'nonce', no 'envelopes'"
            )
        if not direct and self.envelopes is None:
            raise PydanticCustomError(
                "shape", "give 'ciphertext' and 'nonce' (direct) or 'envelopes' (band)"
            )
        return self


class DeleteMessage(Payload):
    id: MessageId


class SyncMessages(Payload):
    after: int = Field(ge=0, le=2**62)
    limit: int | None = Field(default=None, ge=1, le=1000)


class MarkMessages(Payload):
    ids: list[MessageId] = Field(min_length=1, max_length=MAX_IDS_PER_RECEIPT)


@dataclass(frozen=True, slots=True)
class MessageEventServices:
    """What the ``message:*`` handlers may call."""

    messaging: MessagingService
    metrics: HubMetrics


events: EventTable[MessageEventServices] = EventTable()


@events.on("message:send", SendMessage)
async def send_message(ctx: EventContext[MessageEventServices], body: SendMessage) -> Ack:
    sender = Sender(ctx.user_id, ctx.device_id, ctx.conn_id)
    messaging = ctx.services.messaging
    relation = Relation(body.relatesTo.type, body.relatesTo.id) if body.relatesTo else None
    if body.to is not None:
        assert body.ciphertext is not None and body.nonce is not None
        stored = await messaging.send_direct(
            sender, body.id, body.to, body.ciphertext, body.nonce, relation, body.attachments or ()
        )
        ctx.services.metrics.messages.labels(kind="direct").inc()
    else:
        assert body.band is not None and body.envelopes is not None
        envelopes = [Envelope(e.to, e.ciphertext, e.nonce) for e in body.envelopes]
        stored = await messaging.send_band(
            sender, body.id, body.band, envelopes, relation, body.attachments or ()
        )
        ctx.services.metrics.messages.labels(kind="band").inc()
    return ok(**sent_message(stored))


@events.on("message:edit", EditMessage)
async def edit_message(ctx: EventContext[MessageEventServices], body: EditMessage) -> Ack:
    sender = Sender(ctx.user_id, ctx.device_id, ctx.conn_id)
    direct = (body.ciphertext, body.nonce) if body.ciphertext and body.nonce else None
    envelopes = [Envelope(e.to, e.ciphertext, e.nonce) for e in body.envelopes or []] or None
    stored = await ctx.services.messaging.edit(
        sender, body.id, body.replaces, direct, envelopes, body.attachments or ()
    )
    return ok(**sent_message(stored))


@events.on("message:delete", DeleteMessage)
async def delete_message(ctx: EventContext[MessageEventServices], body: DeleteMessage) -> Ack:
    sender = Sender(ctx.user_id, ctx.device_id, ctx.conn_id)
    await ctx.services.messaging.delete(sender, body.id)
    return ok(**delete_ack(body.id))


@events.on("message:sync", SyncMessages)
async def sync_messages(ctx: EventContext[MessageEventServices], body: SyncMessages) -> Ack:
    return ok(**await ctx.services.messaging.sync(ctx.user_id, body.after, body.limit))


@events.on("message:delivered", MarkMessages)
async def mark_delivered(ctx: EventContext[MessageEventServices], body: MarkMessages) -> Ack:
    ts = await ctx.services.messaging.mark(ctx.user_id, ctx.conn_id, body.ids, "delivered")
    return ok(**marked(ts))


@events.on("message:read", MarkMessages)
async def mark_read(ctx: EventContext[MessageEventServices], body: MarkMessages) -> Ack:
    ts = await ctx.services.messaging.mark(ctx.user_id, ctx.conn_id, body.ids, "read")
    return ok(**marked(ts))
