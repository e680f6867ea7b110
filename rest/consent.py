"""``/api/messages/requests`` and ``/api/blocks``: who may reach you.

Registered before ``rest/messages.py``, whose ``/api/messages/{conversation_id}`` would
otherwise take ``/api/messages/requests``.
"""

from __future__ import annotations

from aiohttp import web

from hub.consent.views import BlockList, MessageRequestList
from rest.http import current_user, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes

routes = ApiRoutes("consent")

REQUEST = "/api/messages/requests/{user_id}"
BLOCK = "/api/blocks/{user_id}"


@routes.get(
    "/api/messages/requests",
    summary="Pending message requests to you, oldest first",
    answer=MessageRequestList,
)
async def list_requests(request: web.Request) -> web.Response:
    page = await request.app[SERVICES].consent.requests(current_user(request))
    return json_response(page.wire())


@routes.post(
    f"{REQUEST}/accept",
    summary="Accept a message request: the two become contacts",
    description="The requester's devices get contact:accepted. No pending request: 404.",
    media_type=None,
    status=204,
)
async def accept_request(request: web.Request) -> web.Response:
    user_id, requester = current_user(request), path_uuid(request, "user_id")
    await request.app[SERVICES].consent.accept_request(user_id, requester)
    return web.Response(status=204)


@routes.post(
    f"{REQUEST}/decline",
    summary="Decline a message request: the requester's further messages are refused",
    description="The requester is not told. No pending request: 404.",
    media_type=None,
    status=204,
)
async def decline_request(request: web.Request) -> web.Response:
    user_id, requester = current_user(request), path_uuid(request, "user_id")
    await request.app[SERVICES].consent.decline_request(user_id, requester)
    return web.Response(status=204)


@routes.get("/api/blocks", summary="The users you blocked, the latest first", answer=BlockList)
async def list_blocks(request: web.Request) -> web.Response:
    page = await request.app[SERVICES].consent.blocks(current_user(request))
    return json_response(page.wire())


@routes.put(
    BLOCK,
    summary="Block a user: nothing flows between you two any more, either way",
    description="Direct messages, calls (a live one ends), typing, presence, receipts, "
    "keys:changed and band invitations stop both ways; the blocked user is not told. Band "
    "conversations are not filtered. Idempotent.",
    media_type=None,
    status=204,
)
async def block_user(request: web.Request) -> web.Response:
    user_id, blocked = current_user(request), path_uuid(request, "user_id")
    await request.app[SERVICES].consent.block(user_id, blocked)
    return web.Response(status=204)


@routes.delete(BLOCK, summary="Unblock a user (idempotent)", media_type=None, status=204)
async def unblock_user(request: web.Request) -> web.Response:
    user_id, blocked = current_user(request), path_uuid(request, "user_id")
    await request.app[SERVICES].consent.unblock(user_id, blocked)
    return web.Response(status=204)
