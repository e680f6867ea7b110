"""``/api/calls``: the user's call history, newest first."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ConfigDict, Field

from hub.calls.rules import Outcome
from hub.protocol.fields import CallMedia, LiveKitInstanceName
from hub.protocol.models import View
from rest.http import Query, current_user, json_response, read_query
from rest.keys import SERVICES
from rest.spec import ApiRoutes

routes = ApiRoutes("calls")


class CallHistoryQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=80)


# Answers, as the OpenAPI document and the tests see them.


class CallHistoryItem(View):
    """One finished call: ``to`` for a call between two people, ``band`` for a band's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from", description="the caller")
    to: str | None = None
    band: str | None = None
    instance: LiveKitInstanceName
    media: CallMedia
    startedAt: int = Field(description="ms since the epoch")
    answeredAt: int | None
    endedAt: int
    outcome: Outcome
    duration: int = Field(description="ms from answer to end; 0 for a call never answered")


class CallHistoryPage(View):
    items: list[CallHistoryItem]
    nextCursor: str | None = Field(description="pass as cursor for older calls")


@routes.get(
    "/api/calls",
    summary="The caller's finished calls, newest first",
    query=CallHistoryQuery,
    answer=CallHistoryPage,
)
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
