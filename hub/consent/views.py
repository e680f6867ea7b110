"""The shapes of consent: the request and block lists, and ``contact:accepted``."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from hub.protocol.models import View, pushed
from storage.sql.consent import BlockRow, RequestRow


class MessageRequestView(View):
    userId: str
    name: str
    firstMessageAt: int = Field(description="when the request's first message came (ms)")
    messages: int = Field(description="how many messages the request holds")


class MessageRequestList(View):
    """``GET /api/messages/requests``: pending requests to you, oldest first."""

    items: list[MessageRequestView]


def request_list(rows: Sequence[RequestRow]) -> MessageRequestList:
    return MessageRequestList(
        items=[
            MessageRequestView(
                userId=r.user_id,
                name=r.name,
                firstMessageAt=r.first_message_at,
                messages=r.messages,
            )
            for r in rows
        ]
    )


class BlockView(View):
    userId: str
    name: str
    blockedAt: int


class BlockList(View):
    """``GET /api/blocks``: whom you blocked, the latest first."""

    items: list[BlockView]


def block_list(rows: Sequence[BlockRow]) -> BlockList:
    return BlockList(
        items=[BlockView(userId=r.user_id, name=r.name, blockedAt=r.blocked_at) for r in rows]
    )


@pushed("contact:accepted")
class ContactAcceptedEvent(View):
    """To the requester's devices: ``userId`` accepted their message request (over REST or
    by replying); presence, typing, calls and receipts now flow between the two."""

    userId: str


def contact_accepted(user_id: str) -> ContactAcceptedEvent:
    return ContactAcceptedEvent(userId=user_id)
