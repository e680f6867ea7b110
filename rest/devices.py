"""``/api/devices``: your devices, renaming one, removing one (which logs it out at once)."""

from __future__ import annotations

import re

from aiohttp import web
from pydantic import Field, field_validator

from hub.accounts.views import DeviceItemView, DevicesView
from hub.errors import InvalidPayload
from hub.protocol.fields import MAX_DEVICE_ID, display_name
from rest.http import Body, current_claims, json_response
from rest.keys import SERVICES
from rest.spec import ApiRoutes

_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]+$")


class RenameDevice(Body):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str:
        return display_name(value)


def path_device(request: web.Request) -> str:
    value = request.match_info["device_id"]
    if not 1 <= len(value) <= MAX_DEVICE_ID or not _DEVICE_ID.match(value):
        raise InvalidPayload(
            f"device_id must be 1 to {MAX_DEVICE_ID} chars of A-Za-z0-9._:-",
            details={"field": "device_id"},
        )
    return value


routes = ApiRoutes("devices")


@routes.get(
    "/api/devices", summary="Your devices: which is this one, which are online", answer=DevicesView
)
async def list_devices(request: web.Request) -> web.Response:
    devices = await request.app[SERVICES].devices.list(current_claims(request))
    return json_response(devices.wire())


@routes.patch(
    "/api/devices/{device_id}",
    summary="Rename one of your devices; pushes devices:changed",
    body=RenameDevice,
    answer=DeviceItemView,
)
async def rename_device(request: web.Request, body: RenameDevice) -> web.Response:
    claims = current_claims(request)
    device = await request.app[SERVICES].devices.rename(claims, path_device(request), body.name)
    return json_response(device.wire())


@routes.delete(
    "/api/devices/{device_id}",
    summary="Remove a device: its session is revoked at once (another device than this one "
    "needs a recent authentication)",
    media_type=None,
    status=204,
)
async def remove_device(request: web.Request) -> web.Response:
    claims = current_claims(request)
    await request.app[SERVICES].devices.remove(claims, path_device(request))
    return web.Response(status=204)
