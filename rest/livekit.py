"""``/api/livekit``: a participant's token for a room, opening a room, and LiveKit webhooks.

Webhooks are checked here with ``livekit-api``'s ``WebhookReceiver`` against the key and
secret of the instance named in the path: a JWT whose ``sha256`` claim is the body's hash.
Anything that does not verify is 401 and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BeforeValidator, Field

from hub.errors import NotAuthenticated
from hub.fields import MAX_ROOM_NAME, LiveKitInstanceName, parse_uuid
from rest.bodies import Body
from rest.http import MAX_BODY_BYTES, current_user, json_response, read_body
from rest.keys import SERVICES

routes = web.RouteTableDef()


class RoomTokenRequest(Body):
    instance: LiveKitInstanceName
    room: str = Field(min_length=1, max_length=MAX_ROOM_NAME)


class OpenRoomRequest(Body):
    instance: LiveKitInstanceName
    band: Annotated[str, BeforeValidator(parse_uuid)] | None = None


@routes.post("/api/livekit/token")
async def room_token(request: web.Request) -> web.Response:
    user_id = current_user(request)
    body = await read_body(request, RoomTokenRequest)
    grant = await request.app[SERVICES].rooms.token_for(user_id, body.instance, body.room)
    return json_response(
        {"token": grant.token, "url": grant.url, "room": grant.room, "expiresAt": grant.expires_at}
    )


@routes.post("/api/livekit/room")
async def open_room(request: web.Request) -> web.Response:
    user_id = current_user(request)
    body = await read_body(request, OpenRoomRequest)
    opened = await request.app[SERVICES].rooms.open_room(user_id, body.instance, body.band)
    return json_response(
        {"instance": opened.instance, "room": opened.room, "url": opened.url, "sid": opened.sid}
    )


@routes.post("/api/livekit/webhook/{instance}")
async def livekit_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    instance = request.match_info["instance"]
    receiver = services.livekit.webhook_receiver(instance)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise NotAuthenticated("the webhook is too large to be LiveKit's")
    body = await request.text()
    header = request.headers.get("Authorization", "")
    token = header[7:] if header[:7].lower() == "bearer " else header
    try:
        event = receiver.receive(body, token.strip())
    except Exception:  # bad JWT, wrong key, hash mismatch, unparsable body: all untrusted
        raise NotAuthenticated("the webhook signature does not verify") from None
    handled = await services.calls.on_livekit_event(
        instance, event.event, event.room.name, event.participant.identity
    )
    return json_response({"ok": True, "handled": handled})
