"""``/api/auth``: register, login, refresh, logout and biometric login."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import (
    EmailStr,
    Field,
    field_validator,
)

from hub.accounts.passwords import MAX_PASSWORD_BYTES
from hub.accounts.sessions import DeviceInfo
from hub.accounts.views import (
    BiometricChallengeView,
    BiometricKeysView,
    BiometricKeyView,
    SessionView,
)
from hub.errors import InvalidPayload
from hub.protocol.fields import (
    MAX_DEVICE_ID,
    PublicKey,
    Signature,
    Uuid,
    display_name,
)
from rest.http import (
    Body,
    client_ip,
    current_claims,
    current_user,
    json_response,
    path_uuid,
)
from rest.keys import SERVICES
from rest.spec import ApiRoutes


class Device(Body):
    """The device a login is for (its id is the socket's ``auth.device``)."""

    id: str = Field(min_length=1, max_length=MAX_DEVICE_ID, pattern=r"^[A-Za-z0-9._:-]+$")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    platform: Literal["ios", "android", "web", "other"] | None = None

    @field_validator("name")
    @classmethod
    def name_not_blank(cls, value: str | None) -> str | None:
        return None if value is None else display_name(value)

    def info(self) -> DeviceInfo:
        return DeviceInfo(self.id, self.name, self.platform)


def _device(device: Device | None) -> DeviceInfo | None:
    return device.info() if device is not None else None


class Register(Body):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_BYTES)
    name: str = Field(min_length=1, max_length=100)
    device: Device | None = None

    @field_validator("password")
    @classmethod
    def fits_bcrypt(cls, value: str) -> str:
        if len(value.encode()) > MAX_PASSWORD_BYTES:
            raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
        return value

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str:
        return display_name(value)


def _fits_bcrypt(value: str) -> str:
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
    return value


class ChangePassword(Body):
    currentPassword: str = Field(min_length=1, max_length=MAX_PASSWORD_BYTES * 4)
    newPassword: str = Field(min_length=8, max_length=MAX_PASSWORD_BYTES)

    @field_validator("newPassword")
    @classmethod
    def fits_bcrypt(cls, value: str) -> str:
        return _fits_bcrypt(value)


class Reauth(Body):
    """Either the password, or a biometric challenge signed as for login."""

    password: str | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD_BYTES * 4)
    challengeId: Uuid | None = None
    signature: Signature | None = None


class Login(Body):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_BYTES * 4)
    device: Device | None = None


class Refresh(Body):
    refreshToken: str = Field(min_length=1, max_length=4096)


class Logout(Body):
    all: bool = Field(default=False, description="every device of the account, not just this one")
    refreshToken: str | None = Field(
        default=None, min_length=1, max_length=4096, description="ignored (older apps send it)"
    )


class RegisterBiometricKey(Body):
    publicKey: PublicKey
    deviceName: str = Field(min_length=1, max_length=100)


class BiometricChallengeRequest(Body):
    keyId: Uuid


class BiometricLogin(Body):
    challengeId: Uuid
    signature: Signature
    device: Device | None = None


routes = ApiRoutes("auth")


@routes.post(
    "/api/auth/register",
    summary="Create an account; answers its first tokens",
    body=Register,
    answer=SessionView,
    status=201,
    auth=False,
)
async def register(request: web.Request, body: Register) -> web.Response:
    session = await request.app[SERVICES].accounts.register(
        email=str(body.email), password=body.password, name=body.name, device=_device(body.device)
    )
    return json_response(session.wire(), status=201)


@routes.post(
    "/api/auth/login",
    summary="Log in with email and password",
    body=Login,
    answer=SessionView,
    auth=False,
)
async def login(request: web.Request, body: Login) -> web.Response:
    session = await request.app[SERVICES].accounts.login(
        email=body.email,
        password=body.password,
        client_ip=client_ip(request),
        device=_device(body.device),
    )
    return json_response(session.wire())


@routes.post(
    "/api/auth/refresh",
    summary="Spend a refresh token for new tokens (a replayed one revokes its login)",
    body=Refresh,
    answer=SessionView,
    auth=False,
)
async def refresh(request: web.Request, body: Refresh) -> web.Response:
    session = await request.app[SERVICES].sessions.refresh(body.refreshToken)
    return json_response(session.wire())


@routes.post(
    "/api/auth/logout",
    summary="Close this device's session, or with `all` every device's",
    body=Logout,
    media_type=None,
    status=204,
)
async def logout(request: web.Request, body: Logout) -> web.Response:
    claims = current_claims(request)
    await request.app[SERVICES].sessions.logout(claims, everywhere=body.all)
    return web.Response(status=204)


@routes.post(
    "/api/auth/password",
    summary="Change the password (with the current one); every other device is logged out",
    body=ChangePassword,
    media_type=None,
    status=204,
)
async def change_password(request: web.Request, body: ChangePassword) -> web.Response:
    claims = current_claims(request)
    await request.app[SERVICES].accounts.change_password(
        claims, body.currentPassword, body.newPassword
    )
    return web.Response(status=204)


@routes.post(
    "/api/auth/reauth",
    summary="Prove it is you again (password or a signed biometric challenge): a new pair of "
    "this session with a fresh authTime",
    body=Reauth,
    answer=SessionView,
)
async def reauth(request: web.Request, body: Reauth) -> web.Response:
    claims = current_claims(request)
    accounts = request.app[SERVICES].accounts
    if body.password is not None and body.challengeId is None and body.signature is None:
        session = await accounts.reauth_with_password(claims, body.password)
    elif body.password is None and body.challengeId is not None and body.signature is not None:
        session = await accounts.reauth_with_signature(claims, body.challengeId, body.signature)
    else:
        raise InvalidPayload("send either {password} or {challengeId, signature}")
    return json_response(session.wire())


@routes.get(
    "/api/auth/biometric/keys",
    summary="Your biometric keys, each with the device that registered it",
    answer=BiometricKeysView,
)
async def list_biometric_keys(request: web.Request) -> web.Response:
    keys = await request.app[SERVICES].accounts.biometric_keys(current_user(request))
    return json_response(keys.wire())


@routes.post(
    "/api/auth/biometric/keys",
    summary="Register this device's Ed25519 verify key for biometric login (needs a recent "
    "authentication)",
    body=RegisterBiometricKey,
    answer=BiometricKeyView,
    status=201,
)
async def add_biometric_key(request: web.Request, body: RegisterBiometricKey) -> web.Response:
    claims = current_claims(request)
    key = await request.app[SERVICES].accounts.register_biometric_key(
        claims, body.publicKey, body.deviceName
    )
    return json_response(key.wire(), status=201)


@routes.delete(
    "/api/auth/biometric/keys/{key_id}",
    summary="Remove a biometric key",
    media_type=None,
    status=204,
)
async def remove_biometric_key(request: web.Request) -> web.Response:
    user_id = current_user(request)
    key_id = path_uuid(request, "key_id")
    await request.app[SERVICES].accounts.remove_biometric_key(user_id, key_id)
    return web.Response(status=204)


@routes.post(
    "/api/auth/biometric/challenge",
    summary="A one-time challenge for a biometric key to sign",
    body=BiometricChallengeRequest,
    answer=BiometricChallengeView,
    auth=False,
)
async def biometric_challenge(
    request: web.Request, body: BiometricChallengeRequest
) -> web.Response:
    challenge = await request.app[SERVICES].accounts.biometric_challenge(body.keyId)
    return json_response(challenge.wire())


@routes.post(
    "/api/auth/biometric",
    summary="Log in with a signed challenge",
    body=BiometricLogin,
    answer=SessionView,
    auth=False,
)
async def biometric_login(request: web.Request, body: BiometricLogin) -> web.Response:
    session = await request.app[SERVICES].accounts.biometric_login(
        body.challengeId, body.signature, client_ip(request), _device(body.device)
    )
    return json_response(session.wire())
