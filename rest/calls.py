"""``/api/calls``: the user's call history, newest first."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from rest.bodies import Query
from rest.http import current_user, json_response, read_query
from rest.keys import SERVICES

routes = web.RouteTableDef()


class CallHistoryQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=80)


@routes.get("/api/calls")
async def call_history(request: web.Request) -> web.Response:
    user_id = current_user(request)
    query = read_query(request, CallHistoryQuery)
    page = await request.app[SERVICES].calls.history(user_id, query.cursor, query.limit)
    items: list[dict[str, Any]] = []
    for call in page.calls:
        item: dict[str, Any] = {"id": call.id, "from": call.caller_id}
        if call.band_id is not None:
            item["band"] = call.band_id
        else:
            item["to"] = call.callee_id
        item.update(
            instance=call.instance,
            media=call.media,
            startedAt=call.started_at,
            answeredAt=call.answered_at,
            endedAt=call.ended_at,
            outcome=call.outcome,
            duration=call.ended_at - call.answered_at if call.answered_at is not None else 0,
        )
        items.append(item)
    return json_response({"items": items, "nextCursor": page.next_cursor})
