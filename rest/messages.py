"""``/api/messages``: conversations, history, REST send and read receipts."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from hub.messaging.service import Sender
from hub.messaging.views import (
    ConversationPage,
    MessagePage,
    ReadMarkView,
    SentMessageView,
    read_mark,
    sent_message,
)
from hub.protocol.cursors import MAX_CURSOR_CHARS
from hub.protocol.fields import Ciphertext, MessageId, Nonce, UserId
from rest.http import Body, Query, current_user, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes


class SendMessageBody(Body):
    id: MessageId
    to: UserId
    ciphertext: Ciphertext
    nonce: Nonce


class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CURSOR_CHARS,
        description="the nextCursor of the previous page (opaque)",
    )


routes = ApiRoutes("messages")


@routes.get(
    "/api/messages",
    summary="Conversations, the most recent first",
    query=PageQuery,
    answer=ConversationPage,
)
async def list_conversations(request: web.Request, query: PageQuery) -> web.Response:
    user_id = current_user(request)
    page = await request.app[SERVICES].messaging.conversations(user_id, query.limit, query.cursor)
    return json_response(page)


@routes.get(
    "/api/messages/{conversation_id}",
    summary="A conversation's messages, newest first",
    query=PageQuery,
    answer=MessagePage,
)
async def conversation_history(request: web.Request, query: PageQuery) -> web.Response:
    user_id = current_user(request)
    conversation_id = path_uuid(request, "conversation_id")
    page = await request.app[SERVICES].messaging.history(
        user_id, conversation_id, query.limit, query.cursor
    )
    return json_response(page)


@routes.post(
    "/api/messages",
    summary="Send a direct message (idempotent on id)",
    body=SendMessageBody,
    answer=SentMessageView,
    status=201,
)
async def send_message(request: web.Request, body: SendMessageBody) -> web.Response:
    user_id = current_user(request)
    stored = await request.app[SERVICES].messaging.send_direct(
        Sender(user_id, "rest", None), body.id, body.to, body.ciphertext, body.nonce
    )
    return json_response(sent_message(stored), status=201)


@routes.put(
    "/api/messages/{message_id}/read",
    summary="Mark a received message read",
    answer=ReadMarkView,
)
async def mark_read(request: web.Request) -> web.Response:
    user_id = current_user(request)
    message_id = path_uuid(request, "message_id")
    ts = await request.app[SERVICES].messaging.mark(user_id, None, [message_id], "read")
    return json_response(read_mark(message_id, ts))
