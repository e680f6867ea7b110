"""Push registration (``/api/devices/:id/push``) and a conversation's notification level
(``/api/conversations/:id/notifications``)."""

from __future__ import annotations

import re
from typing import Literal

from aiohttp import web
from pydantic import Field, model_validator

from hub.push.views import NotificationsView, PushStatusView
from rest.devices import path_device
from rest.http import Body, current_claims, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes

_APNS_TOKEN = re.compile(r"^[0-9a-fA-F]{16,400}$")
_FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]{16,4096}$")
LATEST_MS = 2**53 - 1


class RegisterPush(Body):
    provider: Literal["apns", "fcm"]
    token: str = Field(
        min_length=16,
        max_length=4096,
        description="APNs: the device token in hex; FCM: the registration token",
    )
    voipToken: str | None = Field(
        default=None, min_length=16, max_length=400, description="APNs PushKit token (hex)"
    )
    environment: Literal["production", "sandbox"] = "production"

    @model_validator(mode="after")
    def fits_provider(self) -> RegisterPush:
        if self.provider == "apns":
            if not _APNS_TOKEN.match(self.token):
                raise ValueError("token: an APNs device token is hex")
            if self.voipToken is not None and not _APNS_TOKEN.match(self.voipToken):
                raise ValueError("voipToken: a PushKit token is hex")
        else:
            if not _FCM_TOKEN.match(self.token):
                raise ValueError("token: not an FCM registration token")
            if self.voipToken is not None:
                raise ValueError("voipToken: only for apns")
            if self.environment != "production":
                raise ValueError("environment: only for apns")
        return self


class SetNotifications(Body):
    level: Literal["all", "none"]
    mutedUntil: int | None = Field(
        default=None, ge=0, le=LATEST_MS, description="ms; null: until changed"
    )


routes = ApiRoutes("push")


@routes.put(
    "/api/devices/{device_id}/push",
    summary="Register this device's push token (only the device itself; 503 not_configured "
    "for a provider the hub has no credentials for)",
    body=RegisterPush,
    answer=PushStatusView,
)
async def register_push(request: web.Request, body: RegisterPush) -> web.Response:
    claims = current_claims(request)
    status = await request.app[SERVICES].push.register(
        claims,
        path_device(request),
        provider=body.provider,
        token=body.token.lower() if body.provider == "apns" else body.token,
        voip_token=body.voipToken.lower() if body.voipToken else None,
        environment=body.environment,
    )
    return json_response(status.wire())


@routes.delete(
    "/api/devices/{device_id}/push",
    summary="This device gets no more pushes",
    media_type=None,
    status=204,
)
async def unregister_push(request: web.Request) -> web.Response:
    claims = current_claims(request)
    await request.app[SERVICES].push.unregister(claims, path_device(request))
    return web.Response(status=204)


@routes.put(
    "/api/conversations/{conversation_id}/notifications",
    summary="Mute (level none, until mutedUntil or until changed) or unmute a conversation's "
    "message pushes",
    body=SetNotifications,
    answer=NotificationsView,
)
async def set_notifications(request: web.Request, body: SetNotifications) -> web.Response:
    claims = current_claims(request)
    view = await request.app[SERVICES].push.set_notifications(
        claims.user_id, path_uuid(request, "conversation_id"), body.level, body.mutedUntil
    )
    return json_response(view.wire())


@routes.get(
    "/api/conversations/{conversation_id}/notifications",
    summary="A conversation's notification level for you",
    answer=NotificationsView,
)
async def get_notifications(request: web.Request) -> web.Response:
    claims = current_claims(request)
    view = await request.app[SERVICES].push.notifications(
        claims.user_id, path_uuid(request, "conversation_id")
    )
    return json_response(view.wire())
