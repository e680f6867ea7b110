"""``/api/auth``: register, login, refresh, logout and biometric login."""

from __future__ import annotations

from aiohttp import web

from hub.errors import InvalidPayload
from hub.fields import parse_uuid
from rest.bodies import (
    BiometricChallengeRequest,
    BiometricLogin,
    Login,
    Logout,
    Refresh,
    Register,
    RegisterBiometricKey,
)
from rest.http import client_ip, current_user, json_response, read_body
from rest.keys import SERVICES

routes = web.RouteTableDef()


@routes.post("/api/auth/register")
async def register(request: web.Request) -> web.Response:
    body = await read_body(request, Register)
    session = await request.app[SERVICES].accounts.register(
        email=str(body.email), password=body.password, name=body.name
    )
    return json_response(session.as_payload(), status=201)


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, Login)
    session = await request.app[SERVICES].accounts.login(
        email=body.email, password=body.password, client_ip=client_ip(request)
    )
    return json_response(session.as_payload())


@routes.post("/api/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    body = await read_body(request, Refresh)
    session = await request.app[SERVICES].accounts.refresh(body.refreshToken)
    return json_response(session.as_payload())


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    user_id = current_user(request)
    body = await read_body(request, Logout)
    await request.app[SERVICES].accounts.logout(user_id, body.refreshToken)
    return web.Response(status=204)


@routes.post("/api/auth/biometric/keys")
async def add_biometric_key(request: web.Request) -> web.Response:
    user_id = current_user(request)
    body = await read_body(request, RegisterBiometricKey)
    key_id = await request.app[SERVICES].accounts.register_biometric_key(
        user_id, body.publicKey, body.deviceName
    )
    return json_response({"keyId": key_id}, status=201)


@routes.delete("/api/auth/biometric/keys/{key_id}")
async def remove_biometric_key(request: web.Request) -> web.Response:
    user_id = current_user(request)
    try:
        key_id = parse_uuid(request.match_info["key_id"])
    except ValueError:  # a malformed id in the path is the client's mistake, not a 500
        raise InvalidPayload("the key id must be a UUID") from None
    await request.app[SERVICES].accounts.remove_biometric_key(user_id, key_id)
    return web.Response(status=204)


@routes.post("/api/auth/biometric/challenge")
async def biometric_challenge(request: web.Request) -> web.Response:
    body = await read_body(request, BiometricChallengeRequest)
    challenge = await request.app[SERVICES].accounts.biometric_challenge(body.keyId)
    return json_response(
        {
            "challengeId": challenge.challenge_id,
            "challenge": challenge.challenge,
            "expiresAt": challenge.expires_at,
        }
    )


@routes.post("/api/auth/biometric")
async def biometric_login(request: web.Request) -> web.Response:
    body = await read_body(request, BiometricLogin)
    session = await request.app[SERVICES].accounts.biometric_login(
        body.challengeId, body.signature, client_ip(request)
    )
    return json_response(session.as_payload())
