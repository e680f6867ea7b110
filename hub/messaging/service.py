"""End-to-end-encrypted messages: send (direct and band), catch-up, history and receipts.

The hub handles only ciphertext and nonces. A send is committed before it is acknowledged,
and delivered only after the commit, so an acked message is always in PostgreSQL. Each user
gets their own gapless ``seq`` so a device can spot and fill gaps with ``sync``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from hub.attachments.service import AttachmentService
from hub.clock import Clock
from hub.consent.views import contact_accepted
from hub.errors import (
    AttachmentUnusable,
    Conflict,
    Forbidden,
    HubError,
    InvalidPayload,
    NotFound,
    RateLimited,
)
from hub.fanout import Delivery, Fanout
from hub.messaging.rules import check_edit, check_relation_target, may_delete
from hub.messaging.send_queue import SendQueue
from hub.messaging.views import (
    ConversationPageDict,
    MessagePageDict,
    ReceiptStatus,
    SyncPageViewDict,
    conversation_page,
    message_deleted,
    message_page,
    receipt_event,
    sync_page,
)
from hub.protocol.cursors import cursor_int, decode_cursor, encode_cursor, read_part
from hub.push.enqueue import NoPushes, PushQueueWriter
from storage.sql.bands import MembershipStore
from storage.sql.message_lifecycle import MessageLifecycleStore
from storage.sql.message_rows import (
    AttachmentNotBindable,
    CopyToStore,
    MissingUser,
    NewMessage,
    OriginalDeleted,
    StoredMessage,
)
from storage.sql.messages import MessageStore


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sends: the user, and the connection to leave out of the echo (None for REST)."""

    user_id: str
    device_id: str
    conn_id: str | None


@dataclass(frozen=True, slots=True)
class Relation:
    """What a message relates to, in clear: ``reaction``/``reply`` (from the client),
    ``edit`` (``message:edit``)."""

    type: str
    id: str


@dataclass(frozen=True, slots=True)
class Envelope:
    to: str
    ciphertext: bytes
    nonce: bytes


SYNC_PAGE_BYTES = 1024 * 1024
# One answer for a declined request and for a block either way, so the blocked side cannot
# tell the two apart.
NOT_ACCEPTING = "this user does not accept messages from you"
REQUEST_RETRY_SECONDS = 3600


def _refusal(verdict: str, max_request_messages: int) -> HubError:
    if verdict == "pending_full":
        return Forbidden(
            f"your message request is pending: at most {max_request_messages} messages "
            "until it is accepted"
        )
    if verdict == "daily_full":
        return RateLimited(
            "too many new message requests today; try again later",
            retry_after_seconds=REQUEST_RETRY_SECONDS,
        )
    return Forbidden(NOT_ACCEPTING)


class MessagingService:
    def __init__(
        self,
        *,
        messages: MessageStore,
        send_queue: SendQueue,
        memberships: MembershipStore,
        lifecycle: MessageLifecycleStore,
        attachments: AttachmentService,
        fanout: Fanout,
        clock: Clock,
        sync_page_limit: int,
        edit_window_ms: int,
        pushes: PushQueueWriter | NoPushes,
        max_request_messages: int,
    ) -> None:
        self._pushes = pushes
        self._max_request_messages = max_request_messages
        self._messages = messages
        self._lifecycle = lifecycle
        self._attachments = attachments
        self._edit_window_ms = edit_window_ms
        self._memberships = memberships
        self._fanout = fanout
        self._clock = clock
        self._sync_page_limit = sync_page_limit
        self._send_queue = send_queue

    async def send_direct(
        self,
        sender: Sender,
        message_id: str,
        to: str,
        ciphertext: bytes,
        nonce: bytes,
        relation: Relation | None = None,
        attachments: Sequence[str] = (),
    ) -> StoredMessage:
        if to == sender.user_id:
            raise InvalidPayload("a direct message goes to another user")
        if relation is not None and relation.type != "edit":
            await self._check_relation(sender.user_id, to, relation)
        copies = [
            CopyToStore(to, sender.user_id, ciphertext, nonce),
            CopyToStore(sender.user_id, to, ciphertext, nonce),
        ]
        return await self._store_once(sender, message_id, to, None, copies, relation, attachments)

    async def send_band(
        self,
        sender: Sender,
        message_id: str,
        band_id: str,
        envelopes: Sequence[Envelope],
        relation: Relation | None = None,
        attachments: Sequence[str] = (),
    ) -> StoredMessage:
        """One envelope per other current member, exactly: nobody is silently left out."""
        members = await self._memberships.band_member_ids(band_id)
        if sender.user_id not in members:
            # As on every band route: a non-member cannot tell a band from a missing one.
            raise NotFound("no such band")
        if relation is not None and relation.type != "edit":
            await self._check_relation(sender.user_id, band_id, relation)
        addressed = [e.to for e in envelopes]
        if len(set(addressed)) != len(addressed):
            raise InvalidPayload("one envelope per member: a member is addressed twice")
        expected = members - {sender.user_id}
        missing, extra = expected - set(addressed), set(addressed) - expected
        if missing or extra:
            raise Conflict(
                "the envelopes do not match the band's current members",
                details={"missing": sorted(missing), "extra": sorted(extra)},
            )
        copies = [CopyToStore(e.to, sender.user_id, e.ciphertext, e.nonce) for e in envelopes]
        first = envelopes[0]
        copies.append(CopyToStore(sender.user_id, first.to, first.ciphertext, first.nonce))
        return await self._store_once(
            sender, message_id, None, band_id, copies, relation, attachments
        )

    async def edit(
        self,
        sender: Sender,
        message_id: str,
        replaces: str,
        direct: tuple[bytes, bytes] | None,
        envelopes: Sequence[Envelope] | None,
        attachments: Sequence[str] = (),
    ) -> StoredMessage:
        """A new message relating to the sender's own original as its ``edit``, sent into the
        original's conversation (direct: ``direct`` is ciphertext and nonce; band: the
        envelopes, checked against the current members as for a send)."""
        original = check_edit(
            await self._lifecycle.held_message(sender.user_id, replaces),
            sender.user_id,
            self._clock(),
            self._edit_window_ms,
        )
        relation = Relation("edit", original.id)
        if original.band_id is not None:
            if envelopes is None:
                raise InvalidPayload("the edit of a band message has 'envelopes'")
            return await self.send_band(
                sender, message_id, original.band_id, envelopes, relation, attachments
            )
        if direct is None:
            raise InvalidPayload("the edit of a direct message has 'ciphertext' and 'nonce'")
        ciphertext, nonce = direct
        return await self.send_direct(
            sender, message_id, original.conversation_id, ciphertext, nonce, relation, attachments
        )

    async def delete(self, deleter: Sender, message_id: str) -> None:
        """Delete for everyone: the sender, or in a band an owner or admin. Idempotent: a
        message already deleted answers as deleted and changes nothing. Every holder's
        devices (but the deleting one) get ``message:deleted`` with their tombstone's seq."""
        target = await self._lifecycle.held_message(deleter.user_id, message_id)
        if target is None:
            raise NotFound("no such message")
        if target.relates_type in ("edit", "delete"):
            raise InvalidPayload("delete the original message: its edits go with it")
        band_admin = target.band_role in ("owner", "admin")
        if not may_delete(target, deleter.user_id, band_admin):
            raise Forbidden("only the sender (or a band owner or admin) may delete a message")
        if target.deleted:
            return
        tombstones = await self._lifecycle.delete_for_everyone(
            message_id, deleter.user_id, deleter.device_id, str(uuid.uuid4()), self._clock()
        )
        await self._fanout.deliver(
            [
                Delivery(
                    t.user_id,
                    "message:deleted",
                    cast("dict[str, Any]", message_deleted(t)),
                    deleter.conn_id if t.user_id == deleter.user_id else None,
                )
                for t in tombstones
            ]
        )
        # A device that showed an alert for it gets a silent push to withdraw it.
        await self._pushes.message_deleted(message_id, [t.user_id for t in tombstones])

    async def _check_relation(self, user_id: str, conversation_id: str, relation: Relation) -> None:
        target = await self._lifecycle.held_message(user_id, relation.id)
        check_relation_target(target, conversation_id)

    async def _store_once(
        self,
        sender: Sender,
        message_id: str,
        to: str | None,
        band_id: str | None,
        copies: list[CopyToStore],
        relation: Relation | None,
        attachments: Sequence[str],
    ) -> StoredMessage:
        """The message as committed, once: a resend of the same id returns the first one, and
        the same id for another recipient or band is ``conflict``. Delivery is not awaited
        here: the send queue fans the copies out after the commit, beside the next one.
        Attachments are checked (a query only when there are some) and bound in the send's
        own transaction: an ack means stored and bound, a refusal binds nothing."""
        if attachments:
            conversation = cast("str", to or band_id)
            await self._attachments.check_bindable(
                sender.user_id, conversation, message_id, attachments
            )
        message = NewMessage(
            id=message_id,
            sender_id=sender.user_id,
            sender_device=sender.device_id,
            recipient_id=to,
            band_id=band_id,
            ts=self._clock(),
            copies=copies,
            relates_type=relation.type if relation else None,
            relates_to=relation.id if relation else None,
            attachments=tuple(attachments),
        )
        try:
            outcome = await self._send_queue.submit(message, sender.conn_id)
        except OriginalDeleted:
            raise NotFound("this message was deleted") from None
        except AttachmentNotBindable:
            raise AttachmentUnusable(
                "an attachment was bound or removed meanwhile; nothing was stored",
                details={"reason": "unavailable"},
            ) from None
        except MissingUser:
            raise NotFound("no such recipient") from None
        if outcome.refusal is not None:
            raise _refusal(outcome.refusal, self._max_request_messages)
        if outcome.accepted_request is not None:
            accepted = contact_accepted(sender.user_id).wire()
            await self._fanout.deliver(
                [Delivery(outcome.accepted_request, "contact:accepted", accepted)]
            )
        stored = outcome.message
        if not outcome.copies and (stored.sender_id, stored.recipient_id, stored.band_id) != (
            sender.user_id,
            to,
            band_id,
        ):
            raise Conflict("this message id is already used for another message")
        return stored

    async def sync(self, user_id: str, after: int, limit: int | None) -> SyncPageViewDict:
        """The user's messages with ``seq > after`` in order; ``more`` if the page was cut.

        A page also stops at ``SYNC_PAGE_BYTES`` of ciphertext (always holding at least one
        message), so a phone catching up on large messages never gets a 30 MB ack.
        """
        page = min(limit or self._sync_page_limit, self._sync_page_limit)
        copies, more = await self._messages.copies_after(user_id, after, page, SYNC_PAGE_BYTES)
        return sync_page(copies, more)

    async def conversations(
        self, user_id: str, limit: int, cursor: str | None
    ) -> ConversationPageDict:
        """The user's conversations, the one with the newest message first, a page at a time.

        A conversation's position is the user's ``seq`` of its last message, so one that gets
        a new message while the user pages moves to the top (its ``message:new`` tells them)
        and is not repeated further down.
        """
        before = _seq_in(cursor) if cursor is not None else None
        summaries = await self._messages.conversations(user_id, before, limit + 1)
        page = summaries[:limit]
        more = len(summaries) > limit
        return conversation_page(page, _seq_cursor(page[-1].last.seq) if more else None)

    async def history(
        self, user_id: str, conversation_id: str, limit: int, cursor: str | None
    ) -> MessagePageDict:
        """A page of one conversation, newest first, and the cursor for the older page. Edits
        are not listed: each message carries its latest edit."""
        before = _seq_in(cursor) if cursor is not None else None
        copies = await self._messages.conversation_before(
            user_id, conversation_id, before, limit + 1
        )
        page = copies[:limit]
        more = len(copies) > limit
        edits = await self._messages.latest_edits(user_id, [c.message_id for c in page])
        return message_page(page, edits, _seq_cursor(page[-1].seq) if more else None)

    async def mark(
        self,
        reader_id: str,
        reader_conn: str | None,
        message_ids: list[str],
        status: ReceiptStatus,
    ) -> int:
        """Record delivered/read for messages the reader received, and tell the senders'
        devices and the reader's other devices. Returns the time recorded."""
        ids = list(dict.fromkeys(message_ids))
        now = self._clock()
        received, changes = await self._messages.mark_received(
            reader_id, ids, status=status, now_ms=now
        )
        foreign = [i for i in ids if i not in received]
        if foreign:
            raise Forbidden("only a recipient can mark a message", details={"ids": foreign[:50]})
        if not changes:
            return now
        by_sender: dict[str, list[str]] = defaultdict(list)
        for change in changes:
            by_sender[change.sender_id].append(change.message_id)
        # Receipts go to contacts only: not for a pending request, nor across a block.
        contacts = await self._memberships.visible_among(reader_id, sorted(by_sender))
        deliveries = [
            Delivery(
                sender_id,
                "message:receipt",
                cast("dict[str, Any]", receipt_event(sent_ids, reader_id, status, now)),
            )
            for sender_id, sent_ids in by_sender.items()
            if sender_id in contacts
        ]
        everything = receipt_event([c.message_id for c in changes], reader_id, status, now)
        deliveries.append(
            Delivery(reader_id, "message:receipt", cast("dict[str, Any]", everything), reader_conn)
        )
        await self._fanout.deliver(deliveries)
        if status == "read":
            await self._pushes.badge_changed(reader_id)  # the reader's offline devices
        return now


def _seq_cursor(seq: int) -> str:
    """The opaque cursor of a position in the user's own sequence (history, conversations)."""
    return encode_cursor([str(seq)])


def _seq_in(cursor: str) -> int:
    (seq,) = decode_cursor(cursor, 1)
    return read_part(seq, cursor_int)
