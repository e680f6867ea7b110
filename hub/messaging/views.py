"""Messaging's wire shapes: ``message:new`` (also each item of sync and history), receipts,
typing, and the acks and REST answers around them.

These are on the hot path or next to it (every delivered message is a ``message:new``, a
catch-up page holds up to 500 of them), so they are built as plain dicts and never validated
one by one. Each shape is therefore written twice, on purpose: a ``View`` model, which
documents it (OpenAPI, the test phones' checks of every pushed event), and a ``TypedDict`` of
the same name with ``Dict`` appended, which mypy holds its one builder function to (a
misspelt or missing key is a type error). ``WIRE_SHAPES`` pairs them; a unit test
(``tests/test_views.py``) fails when a pair's keys or required keys differ, and the behaviour
tests validate what the hub really sends against the models.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Literal, NotRequired, TypedDict, cast

from pydantic import ConfigDict, Field

from hub.messaging.typing_views import TypingAckView as TypingAckView
from hub.messaging.typing_views import TypingAckViewDict as TypingAckViewDict
from hub.messaging.typing_views import TypingState as TypingState
from hub.messaging.typing_views import TypingView as TypingView
from hub.messaging.typing_views import TypingViewDict as TypingViewDict
from hub.messaging.typing_views import typing_ack as typing_ack
from hub.messaging.typing_views import typing_in_band as typing_in_band
from hub.messaging.typing_views import typing_to_user as typing_to_user
from hub.protocol.models import View, pushed
from storage.sql.message_lifecycle import Tombstone
from storage.sql.message_rows import ConversationSummary, StoredCopy, StoredMessage

ReceiptStatus = Literal["delivered", "read"]
RelationType = Literal["reaction", "reply", "edit"]


class RelationView(View):
    """What a message relates to, in clear (its content stays inside the ciphertext)."""

    type: RelationType
    id: str = Field(description="the original message")


class RelationViewDict(TypedDict):
    type: RelationType
    id: str


class EditView(View):
    """The latest edit of a message, attached to it in history."""

    id: str
    ciphertext: str
    nonce: str
    ts: int


class EditViewDict(TypedDict):
    id: str
    ciphertext: str
    nonce: str
    ts: int


@pushed("message:new")
class MessageView(View):
    """``message:new`` as the reading user sees it: ``to`` (direct) or ``band``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from")
    to: str | None = Field(default=None, description="direct: the recipient")
    band: str | None = Field(default=None, description="band message: the band")
    ciphertext: str
    nonce: str
    ts: int
    seq: int = Field(description="this user's own gapless sequence number")
    peer: str = Field(description="whose public key opens the box with your secret key")
    relatesTo: RelationView | None = Field(
        default=None, description="a reaction, reply or edit: the message it relates to"
    )
    edit: EditView | None = Field(
        default=None, description="history only: the message's latest edit"
    )
    request: Literal[True] | None = Field(default=None, description="came as a message request")


MessageViewDict = TypedDict(
    "MessageViewDict",
    {
        "id": str,
        "from": str,
        "to": NotRequired[str],
        "band": NotRequired[str],
        "ciphertext": str,
        "nonce": str,
        "ts": int,
        "seq": int,
        "peer": str,
        "relatesTo": NotRequired[RelationViewDict],
        "edit": NotRequired[EditViewDict],
        "request": NotRequired[Literal[True]],
    },
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def message_new(copy: StoredCopy) -> MessageViewDict:
    """One user's copy as that user receives it: ``seq`` is theirs, ``peer`` opens the box."""
    body: MessageViewDict = {
        "id": copy.message_id,
        "from": copy.sender_id,
        "ciphertext": b64(copy.ciphertext),
        "nonce": b64(copy.nonce),
        "ts": copy.ts,
        "seq": copy.seq,
        "peer": copy.peer,
    }
    if copy.band_id is not None:
        body["band"] = copy.band_id
    else:
        body["to"] = copy.conversation_id if copy.sender_id == copy.user_id else copy.user_id
    if copy.relates_type is not None:
        body["relatesTo"] = {
            "type": cast("RelationType", copy.relates_type),
            "id": cast("str", copy.relates_to),
        }
    if copy.request:
        body["request"] = True
    return body


class DeletedMessageView(View):
    """A message deleted for everyone, where it stood (sync, history): no ciphertext."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from")
    deleted: Literal[True]
    ts: int
    seq: int


DeletedMessageViewDict = TypedDict(
    "DeletedMessageViewDict",
    {"id": str, "from": str, "deleted": Literal[True], "ts": int, "seq": int},
)


@pushed("message:deleted")
class MessageDeletedView(View):
    """``message:deleted`` (also an item of sync): ``by`` deleted message ``id`` for everyone;
    ``seq`` is the tombstone's place in this user's sequence."""

    id: str
    by: str
    ts: int
    seq: int


class MessageDeletedViewDict(TypedDict):
    id: str
    by: str
    ts: int
    seq: int


def message_deleted(tombstone: Tombstone) -> MessageDeletedViewDict:
    return {
        "id": tombstone.message_id,
        "by": tombstone.deleted_by,
        "ts": tombstone.ts,
        "seq": tombstone.seq,
    }


InboxItemDict = MessageViewDict | DeletedMessageViewDict | MessageDeletedViewDict
ListedMessageDict = MessageViewDict | DeletedMessageViewDict


def listed_message(copy: StoredCopy) -> ListedMessageDict:
    """A copy in history or as a conversation's last message: erased ones as deleted."""
    if copy.erased:
        return {
            "id": copy.message_id,
            "from": copy.sender_id,
            "deleted": True,
            "ts": copy.ts,
            "seq": copy.seq,
        }
    return message_new(copy)


def inbox_item(copy: StoredCopy) -> InboxItemDict:
    """A copy in catch-up: a tombstone is the ``message:deleted`` it was pushed as."""
    if copy.relates_type == "delete":
        return {
            "id": cast("str", copy.relates_to),
            "by": copy.sender_id,
            "ts": copy.ts,
            "seq": copy.seq,
        }
    return listed_message(copy)


class DeleteAckView(View):
    """The ``message:delete`` ack (after ``ok``)."""

    id: str


class DeleteAckViewDict(TypedDict):
    id: str


def delete_ack(message_id: str) -> DeleteAckViewDict:
    return {"id": message_id}


@pushed("message:receipt")
class ReceiptView(View):
    """``message:receipt``: ``by`` marked ``ids`` at ``ts``."""

    ids: list[str]
    by: str
    status: ReceiptStatus
    ts: int


class ReceiptViewDict(TypedDict):
    ids: list[str]
    by: str
    status: ReceiptStatus
    ts: int


def receipt_event(ids: list[str], by: str, status: ReceiptStatus, ts: int) -> ReceiptViewDict:
    return {"ids": ids, "by": by, "status": status, "ts": ts}


class SentMessageView(View):
    """The ``message:send`` ack (after ``ok``) and the answer of ``POST /api/messages``."""

    id: str
    ts: int = Field(description="the commit time, as in the recipients' message:new")


class SentMessageViewDict(TypedDict):
    id: str
    ts: int


def sent_message(stored: StoredMessage) -> SentMessageViewDict:
    return {"id": stored.id, "ts": stored.ts}


class SyncPageView(View):
    """The ``message:sync`` ack (after ``ok``)."""

    messages: list[MessageView | DeletedMessageView | MessageDeletedView]
    more: bool = Field(description="call again after the last seq")


class SyncPageViewDict(TypedDict):
    messages: list[InboxItemDict]
    more: bool


def sync_page(copies: Sequence[StoredCopy], more: bool) -> SyncPageViewDict:
    return {"messages": [inbox_item(c) for c in copies], "more": more}


class MarkedView(View):
    """The ``message:delivered`` and ``message:read`` ack (after ``ok``)."""

    ts: int


class MarkedViewDict(TypedDict):
    ts: int


def marked(ts: int) -> MarkedViewDict:
    return {"ts": ts}


class ReadMarkView(View):
    """The answer of ``PUT /api/messages/{id}/read``."""

    id: str
    status: Literal["read"]
    ts: int


class ReadMarkViewDict(TypedDict):
    id: str
    status: Literal["read"]
    ts: int


def read_mark(message_id: str, ts: int) -> ReadMarkViewDict:
    return {"id": message_id, "status": "read", "ts": ts}


class ConversationView(View):
    conversationId: str = Field(description="the other user's id (direct) or the band's id")
    kind: Literal["direct", "band"]
    lastMessage: MessageView | DeletedMessageView
    unread: int


class ConversationViewDict(TypedDict):
    conversationId: str
    kind: Literal["direct", "band"]
    lastMessage: ListedMessageDict
    unread: int


class ConversationPage(View):
    items: list[ConversationView]
    nextCursor: str | None = Field(description="pass as cursor for the next page; null: no more")


class ConversationPageDict(TypedDict):
    items: list[ConversationViewDict]
    nextCursor: str | None


def conversation_page(
    summaries: Sequence[ConversationSummary], next_cursor: str | None
) -> ConversationPageDict:
    items: list[ConversationViewDict] = [
        {
            "conversationId": s.conversation_id,
            "kind": "band" if s.band_id else "direct",
            "lastMessage": listed_message(s.last),
            "unread": s.unread,
        }
        for s in summaries
    ]
    return {"items": items, "nextCursor": next_cursor}


class MessagePage(View):
    items: list[MessageView | DeletedMessageView]
    nextCursor: str | None = Field(description="pass as cursor for older messages; null: no more")


class MessagePageDict(TypedDict):
    items: list[ListedMessageDict]
    nextCursor: str | None


def message_page(
    copies: Sequence[StoredCopy], edits: Mapping[str, StoredCopy], next_cursor: str | None
) -> MessagePageDict:
    items: list[ListedMessageDict] = []
    for copy in copies:
        if copy.erased:
            items.append(listed_message(copy))
            continue
        item = message_new(copy)
        edit = edits.get(copy.message_id)
        if edit is not None:
            item["edit"] = {
                "id": edit.message_id,
                "ciphertext": b64(edit.ciphertext),
                "nonce": b64(edit.nonce),
                "ts": edit.ts,
            }
        items.append(item)
    return {"items": items, "nextCursor": next_cursor}


# Each model and the TypedDict its builder is typed against (see the module docstring).
WIRE_SHAPES: dict[type[View], type] = {
    MessageView: MessageViewDict,
    RelationView: RelationViewDict,
    DeletedMessageView: DeletedMessageViewDict,
    MessageDeletedView: MessageDeletedViewDict,
    DeleteAckView: DeleteAckViewDict,
    EditView: EditViewDict,
    ReceiptView: ReceiptViewDict,
    TypingView: TypingViewDict,
    TypingAckView: TypingAckViewDict,
    SentMessageView: SentMessageViewDict,
    SyncPageView: SyncPageViewDict,
    MarkedView: MarkedViewDict,
    ReadMarkView: ReadMarkViewDict,
    ConversationView: ConversationViewDict,
    ConversationPage: ConversationPageDict,
    MessagePage: MessagePageDict,
}
