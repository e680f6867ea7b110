"""``/api/livekit``: a participant's token for a room, opening a room, and LiveKit webhooks.

Webhooks are checked here with ``livekit-api``'s ``WebhookReceiver`` against the key and
secret of the instance named in the path: a JWT whose ``sha256`` claim is the body's hash.
Anything that does not verify is 401 and changes nothing.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from hub.calls.views import (
    LiveKitWebhookAck,
    OpenedRoomView,
    RoomTokenView,
    opened_room_answer,
    room_token_answer,
    webhook_answer,
)
from hub.errors import NotAuthenticated
from hub.protocol.fields import MAX_ROOM_NAME, BandId, LiveKitInstanceName
from rest.http import MAX_BODY_BYTES, Body, current_user, json_response
from rest.keys import SERVICES
from rest.spec import ApiRoutes

routes = ApiRoutes("livekit")


class RoomTokenRequest(Body):
    instance: LiveKitInstanceName
    room: str = Field(min_length=1, max_length=MAX_ROOM_NAME)


class OpenRoomRequest(Body):
    instance: LiveKitInstanceName
    band: BandId | None = None


@routes.post(
    "/api/livekit/token",
    summary="The caller's own token for a room they belong to",
    description="call-<callId> of a live call the caller takes part in (on that call's "
    "instance), band-<bandId> of one of their bands, or their own user-<userId>; any other "
    "room is 403. 503 not_configured for an instance this hub has no configuration for.",
    body=RoomTokenRequest,
    answer=RoomTokenView,
)
async def room_token(request: web.Request, body: RoomTokenRequest) -> web.Response:
    user_id = current_user(request)
    grant = await request.app[SERVICES].rooms.token_for(user_id, body.instance, body.room)
    return json_response(room_token_answer(grant))


@routes.post(
    "/api/livekit/room",
    summary="Create (or find) a band's room, or without band the caller's own, on an instance",
    description="Members only: a band the caller is not a member of is 404, as if it did not "
    "exist. 503 unavailable when LiveKit does not answer or refuses.",
    body=OpenRoomRequest,
    answer=OpenedRoomView,
)
async def open_room(request: web.Request, body: OpenRoomRequest) -> web.Response:
    user_id = current_user(request)
    opened = await request.app[SERVICES].rooms.open_room(user_id, body.instance, body.band)
    return json_response(opened_room_answer(opened))


@routes.post(
    "/api/livekit/webhook/{instance}",
    summary="LiveKit's webhook for that instance (main, meet, chat)",
    description="Its Authorization header (Bearer optional) is a JWT signed with that "
    "instance's key and secret whose sha256 claim is the body's SHA-256. Anything that does "
    "not verify is 401 and changes nothing. participant_joined, participant_left and "
    "room_finished of a call's room update that call; other events are acknowledged and "
    "ignored.",
    answer=LiveKitWebhookAck,
    auth=False,
)
async def livekit_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    instance = request.match_info["instance"]
    receiver = services.livekit.webhook_receiver(instance)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise NotAuthenticated("the webhook is too large to be LiveKit's")
    body = await request.read()
    header = request.headers.get("Authorization", "")
    token = header[7:] if header[:7].lower() == "bearer " else header
    try:
        # LiveKit signs UTF-8 JSON: a body that does not decode is not LiveKit's either.
        event = receiver.receive(body.decode(), token.strip())
    except Exception:  # bad JWT, wrong key, hash mismatch, unparsable body: all untrusted
        raise NotAuthenticated("the webhook signature does not verify") from None
    handled = await services.calls.on_livekit_event(
        instance, event.event, event.room.name, event.participant.identity
    )
    return json_response(webhook_answer(handled))
