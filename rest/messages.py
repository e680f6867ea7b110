"""``/api/messages``: conversations, history, REST send and read receipts."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import (
    Field,
)
from pydantic_core import PydanticCustomError

from hub.errors import InvalidPayload
from hub.messaging.service import Sender
from hub.messaging.views import (
    ConversationPage,
    MessagePage,
    ReadMarkView,
    SentMessageView,
    copy_payload,
)
from hub.protocol.fields import (
    Ciphertext,
    MessageId,
    Nonce,
    UserId,
    parse_uuid,
)
from rest.http import Body, Query, current_user, json_response, read_body, read_query
from rest.keys import SERVICES
from rest.spec import ApiRoutes


class SendMessageBody(Body):
    id: MessageId
    to: UserId
    ciphertext: Ciphertext
    nonce: Nonce


class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: int | None = Field(default=None, ge=0)


routes = ApiRoutes("messages")


def _uuid_in_path(request: web.Request, name: str) -> str:
    try:
        return parse_uuid(request.match_info[name])
    except (ValueError, PydanticCustomError):
        raise InvalidPayload(f"{name} must be a UUID") from None


@routes.get(
    "/api/messages",
    summary="Conversations, most recent first",
    query=PageQuery,
    answer=ConversationPage,
)
async def list_conversations(request: web.Request) -> web.Response:
    user_id = current_user(request)
    query = read_query(request, PageQuery)
    summaries = await request.app[SERVICES].messaging.conversations(user_id, query.limit)
    items: list[dict[str, Any]] = [
        {
            "conversationId": s.conversation_id,
            "kind": "band" if s.band_id else "direct",
            "lastMessage": copy_payload(s.last),
            "unread": s.unread,
        }
        for s in summaries
    ]
    return json_response({"items": items, "nextCursor": None})


@routes.get(
    "/api/messages/{conversation_id}",
    summary="A conversation's messages, newest first",
    query=PageQuery,
    answer=MessagePage,
)
async def conversation_history(request: web.Request) -> web.Response:
    user_id = current_user(request)
    conversation_id = _uuid_in_path(request, "conversation_id")
    query = read_query(request, PageQuery)
    items, cursor = await request.app[SERVICES].messaging.history(
        user_id, conversation_id, query.cursor, query.limit
    )
    return json_response({"items": items, "nextCursor": cursor})


@routes.post(
    "/api/messages",
    summary="Send a direct message (idempotent on id)",
    body=SendMessageBody,
    answer=SentMessageView,
    status=201,
)
async def send_message(request: web.Request) -> web.Response:
    user_id = current_user(request)
    body = await read_body(request, SendMessageBody)
    stored = await request.app[SERVICES].messaging.send_direct(
        Sender(user_id, "rest", None), body.id, body.to, body.ciphertext, body.nonce
    )
    return json_response({"id": stored.id, "ts": stored.ts}, status=201)


@routes.put(
    "/api/messages/{message_id}/read",
    summary="Mark a received message read",
    answer=ReadMarkView,
)
async def mark_read(request: web.Request) -> web.Response:
    user_id = current_user(request)
    message_id = _uuid_in_path(request, "message_id")
    ts = await request.app[SERVICES].messaging.mark(user_id, None, [message_id], "read")
    return json_response({"id": message_id, "status": "read", "ts": ts})
