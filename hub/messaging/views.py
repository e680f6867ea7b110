"""How a stored copy of a message looks on the wire (``message:new``, sync, history)."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import ConfigDict, Field

from hub.protocol.models import View
from storage.sql.messages import StoredCopy


class MessageView(View):
    """``message:new`` as the reading user sees it: ``to`` (direct) or ``band``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from")
    to: str | None = None
    band: str | None = None
    ciphertext: str
    nonce: str
    ts: int
    seq: int
    peer: str


class ConversationView(View):
    conversationId: str
    kind: Literal["direct", "band"]
    lastMessage: MessageView
    unread: int


class ConversationPage(View):
    items: list[ConversationView]
    nextCursor: None


class MessagePage(View):
    items: list[MessageView]
    nextCursor: int | None = Field(description="pass as cursor for older messages")


class SentMessageView(View):
    id: str
    ts: int


class ReadMarkView(View):
    id: str
    status: Literal["read"]
    ts: int


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def copy_payload(copy: StoredCopy) -> dict[str, Any]:
    """``message:new`` as one user sees it: ``seq`` is theirs, ``peer`` opens the box."""
    body: dict[str, Any] = {
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
    return body
