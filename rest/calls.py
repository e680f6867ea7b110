"""``/api/calls``: the user's call history, newest first."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from hub.calls.views import CallHistoryPage, history_answer
from hub.protocol.cursors import MAX_CURSOR_CHARS
from rest.http import Query, current_user, json_response
from rest.keys import SERVICES
from rest.spec import ApiRoutes

routes = ApiRoutes("calls")


class CallHistoryQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(
        default=None, max_length=MAX_CURSOR_CHARS, description="a nextCursor of this list"
    )


@routes.get(
    "/api/calls",
    summary="The caller's finished calls, newest first",
    query=CallHistoryQuery,
    answer=CallHistoryPage,
)
async def call_history(request: web.Request, query: CallHistoryQuery) -> web.Response:
    user_id = current_user(request)
    page = await request.app[SERVICES].calls.history(user_id, query.cursor, query.limit)
    return json_response(history_answer(page))
