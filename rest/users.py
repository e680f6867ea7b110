"""``/api/users``: profiles and E2EE public keys."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import (
    Field,
    field_validator,
)

from hub.accounts.service import Profile
from hub.accounts.views import ProfileView, PublicKeyView
from hub.errors import InvalidPayload
from hub.protocol.fields import (
    PublicKey,
    display_name,
    parse_uuid,
)
from rest.http import Body, current_user, json_response, read_body
from rest.keys import SERVICES
from rest.spec import ApiRoutes


class UpdateProfile(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str | None) -> str | None:
        # Same rule as at registration, so an update cannot blank a name out.
        return None if value is None else display_name(value)


class SetPublicKey(Body):
    publicKey: PublicKey


routes = ApiRoutes("users")


def _user_id(request: web.Request) -> str:
    try:
        return parse_uuid(request.match_info["user_id"])
    except ValueError:
        raise InvalidPayload("the user id must be a UUID") from None


def _profile(user: Profile, viewer_id: str) -> dict[str, Any]:
    """Everyone sees id, name and key; only the owner sees the email."""
    body: dict[str, Any] = {"id": user.id, "name": user.name, "publicKey": user.public_key}
    if viewer_id == user.id:
        body["email"] = user.email
    return body


@routes.get(
    "/api/users/{user_id}",
    summary="A user's profile (the email only for yourself)",
    answer=ProfileView,
)
async def get_user(request: web.Request) -> web.Response:
    viewer = current_user(request)
    user = await request.app[SERVICES].accounts.profile(_user_id(request))
    return json_response(_profile(user, viewer))


@routes.put(
    "/api/users/{user_id}", summary="Change your profile", body=UpdateProfile, answer=ProfileView
)
async def update_user(request: web.Request) -> web.Response:
    viewer = current_user(request)
    body = await read_body(request, UpdateProfile)
    user = await request.app[SERVICES].accounts.update_profile(
        viewer, _user_id(request), name=body.name
    )
    return json_response(_profile(user, viewer))


@routes.get(
    "/api/users/{user_id}/public-key",
    summary="A user's E2EE public key (404 if none yet)",
    answer=PublicKeyView,
)
async def get_public_key(request: web.Request) -> web.Response:
    current_user(request)
    user = await request.app[SERVICES].accounts.profile(_user_id(request))
    if user.public_key is None:
        return json_response(
            {"error": {"code": "not_found", "message": "this user has no public key yet"}}, 404
        )
    return json_response(
        {"userId": user.id, "publicKey": user.public_key, "updatedAt": user.public_key_at}
    )


@routes.put(
    "/api/users/{user_id}/public-key",
    summary="Set your E2EE public key; pushes keys:changed",
    body=SetPublicKey,
    answer=PublicKeyView,
)
async def set_public_key(request: web.Request) -> web.Response:
    viewer = current_user(request)
    body = await read_body(request, SetPublicKey)
    user = await request.app[SERVICES].accounts.set_public_key(
        viewer, _user_id(request), body.publicKey
    )
    return json_response(
        {"userId": user.id, "publicKey": user.public_key, "updatedAt": user.public_key_at}
    )
