"""``/api/users``: profiles and E2EE public keys."""

from __future__ import annotations

from aiohttp import web
from pydantic import (
    Field,
    field_validator,
)

from hub.accounts.views import ProfileView, PublicKeyView
from hub.protocol.fields import (
    PublicKey,
    display_name,
)
from rest.http import Body, current_claims, current_user, json_response, path_uuid
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


@routes.get(
    "/api/users/{user_id}",
    summary="A user's profile (the email only for yourself)",
    answer=ProfileView,
)
async def get_user(request: web.Request) -> web.Response:
    viewer = current_user(request)
    profile = await request.app[SERVICES].accounts.profile(viewer, path_uuid(request, "user_id"))
    return json_response(profile.wire())


@routes.put(
    "/api/users/{user_id}", summary="Change your profile", body=UpdateProfile, answer=ProfileView
)
async def update_user(request: web.Request, body: UpdateProfile) -> web.Response:
    viewer = current_user(request)
    profile = await request.app[SERVICES].accounts.update_profile(
        viewer, path_uuid(request, "user_id"), name=body.name
    )
    return json_response(profile.wire())


@routes.get(
    "/api/users/{user_id}/public-key",
    summary="A user's E2EE public key (404 if none yet)",
    answer=PublicKeyView,
)
async def get_public_key(request: web.Request) -> web.Response:
    current_user(request)
    key = await request.app[SERVICES].accounts.public_key(path_uuid(request, "user_id"))
    return json_response(key.wire())


@routes.put(
    "/api/users/{user_id}/public-key",
    summary="Set your E2EE public key; pushes keys:changed",
    body=SetPublicKey,
    answer=PublicKeyView,
)
async def set_public_key(request: web.Request, body: SetPublicKey) -> web.Response:
    claims = current_claims(request)
    key = await request.app[SERVICES].accounts.set_public_key(
        claims, path_uuid(request, "user_id"), body.publicKey
    )
    return json_response(key.wire())
