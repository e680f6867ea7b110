"""What the call tests share: a fake LiveKit server API, hub nodes configured for LiveKit,
seeded contacts, and checks of the tokens the hub mints."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from google.protobuf.json_format import MessageToJson
from livekit.api import (
    AccessToken,
    CreateRoomRequest,
    ParticipantInfo,
    RemoveParticipantResponse,
    Room,
    RoomParticipantIdentity,
    TokenVerifier,
    WebhookEvent,
)
from livekit.api.access_token import Claims

from hub.calls.views import CallAcceptAck, CallInviteAck
from hub.protocol.models import View
from tests.support import Account, HubNode, Phone, free_port, start_hub_node

MAIN_KEY, MAIN_SECRET = "main-key", "main-secret-" + "m" * 32
CHAT_KEY, CHAT_SECRET = "chat-key", "chat-secret-" + "c" * 32
MAIN_URL, CHAT_URL = "wss://main.livekit.test", "wss://chat.livekit.test"
TOKEN_SECONDS = 600
VIDEO_ON_MAIN = ["camera", "microphone", "screen_share", "screen_share_audio"]
# The acks with a shape of their own; the others are ``{ok: true}`` or an error.
ACK_MODELS: dict[str, type[View]] = {"call:invite": CallInviteAck, "call:accept": CallAcceptAck}


class CallPhone(Phone):
    """A test phone that also checks every successful ``call:invite`` and ``call:accept`` ack
    against its model (the pushes are checked by ``Phone`` itself)."""

    async def call(self, event: str, payload: Any = None, timeout: float = 10) -> Any:
        ack = await super().call(event, payload, timeout=timeout)
        model = ACK_MODELS.get(event)
        if model is not None and isinstance(ack, dict) and ack.get("ok") is True:
            model.model_validate(ack)
        return ack


@dataclass
class FakeLiveKit:
    """LiveKit's server API (RoomService over Twirp, protobuf bodies) on loopback: checks the
    bearer token as LiveKit does and records each CreateRoom and RemoveParticipant (LiveKit
    answers not_found for someone not in the room; this fake answers every removal)."""

    secrets: dict[str, str]
    created: list[tuple[CreateRoomRequest, Claims]] = field(default_factory=list)
    removed: list[tuple[RoomParticipantIdentity, Claims]] = field(default_factory=list)
    url: str = ""

    def _claims(self, request: web.Request) -> Claims | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
            return TokenVerifier(issuer, self.secrets[issuer]).verify(token)
        except Exception:
            return None

    async def remove_participant(self, request: web.Request) -> web.Response:
        claims = self._claims(request)
        if claims is None:
            return web.json_response({"code": "unauthenticated", "msg": "bad token"}, status=401)
        body = RoomParticipantIdentity.FromString(await request.read())
        video = claims.video
        if video is None or not video.room_admin or video.room != body.room:
            return web.json_response({"code": "permission_denied", "msg": "no"}, status=403)
        self.removed.append((body, claims))
        answer = RemoveParticipantResponse()
        return web.Response(body=answer.SerializeToString(), content_type="application/protobuf")

    async def create_room(self, request: web.Request) -> web.Response:
        claims = self._claims(request)
        if claims is None:
            return web.json_response({"code": "unauthenticated", "msg": "bad token"}, status=401)
        if claims.video is None or not claims.video.room_create:
            return web.json_response({"code": "permission_denied", "msg": "no"}, status=403)
        body = CreateRoomRequest.FromString(await request.read())
        self.created.append((body, claims))
        room = Room(
            sid=f"RM_{uuid.uuid4().hex[:12]}",
            name=body.name,
            empty_timeout=body.empty_timeout,
            max_participants=body.max_participants,
            metadata=body.metadata,
        )
        return web.Response(body=room.SerializeToString(), content_type="application/protobuf")


@pytest_asyncio.fixture
async def fake_livekit() -> AsyncIterator[FakeLiveKit]:
    fake = FakeLiveKit({MAIN_KEY: MAIN_SECRET, CHAT_KEY: CHAT_SECRET})
    app = web.Application()
    app.router.add_post("/twirp/livekit.RoomService/CreateRoom", fake.create_room)
    app.router.add_post("/twirp/livekit.RoomService/RemoveParticipant", fake.remove_participant)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def livekit_env(fake: FakeLiveKit) -> dict[str, str]:
    """main and chat configured (their server API on the fake), meet left unconfigured."""
    return {
        "LIVEKIT_MAIN_URL": MAIN_URL,
        "LIVEKIT_MAIN_API_URL": fake.url,
        "LIVEKIT_MAIN_API_KEY": MAIN_KEY,
        "LIVEKIT_MAIN_API_SECRET": MAIN_SECRET,
        "LIVEKIT_CHAT_URL": CHAT_URL,
        "LIVEKIT_CHAT_API_URL": fake.url,
        "LIVEKIT_CHAT_API_KEY": CHAT_KEY,
        "LIVEKIT_CHAT_API_SECRET": CHAT_SECRET,
        "LIVEKIT_TOKEN_SECONDS": str(TOKEN_SECONDS),
    }


StartNodes = Callable[..., Awaitable[list[HubNode]]]


@pytest_asyncio.fixture
async def call_nodes(
    test_env: Any, tmp_path: Path, fake_livekit: FakeLiveKit
) -> AsyncIterator[StartNodes]:
    """``await call_nodes(count=2, ring_seconds=30, **env)``: hub nodes set up for calls."""
    started: list[HubNode] = []

    async def start(count: int = 2, ring_seconds: int = 30, **extra: str) -> list[HubNode]:
        settings = {
            "DEVICE_TTL_SECONDS": "3",
            "CALL_RING_SECONDS": str(ring_seconds),
            **livekit_env(fake_livekit),
            **extra,
        }
        env = test_env.hub_env(**settings)
        names = [f"node-{chr(ord('a') + len(started) + i)}" for i in range(count)]
        nodes = await asyncio.gather(
            *(start_hub_node(env, tmp_path / name, name) for name in names)
        )
        started.extend(nodes)
        return list(nodes)

    try:
        yield start
    finally:
        await asyncio.gather(*(node.stop() for node in started))


async def seed_conversation(database_url: str, a: Account, b: Account) -> None:
    """A direct conversation, as the first message between them would record it."""
    low, high = sorted([a.id, b.id])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO direct_conversations (user_low, user_high, created_at) VALUES ($1, $2, $3)",
            low,
            high,
            int(time.time() * 1000),
        )
    finally:
        await conn.close()


def assert_token(
    token: str,
    *,
    identity: str,
    name: str,
    room: str,
    sources: list[str] = VIDEO_ON_MAIN,
    key: str = MAIN_KEY,
    secret: str = MAIN_SECRET,
) -> Claims:
    """Verified as LiveKit would (signature, issuer, expiry), then every grant checked."""
    claims = TokenVerifier(key, secret).verify(token)
    assert claims.identity == identity and claims.name == name
    video = claims.video
    assert video is not None
    assert video.room == room and video.room_join is True
    assert video.can_subscribe and video.can_publish and video.can_publish_data
    assert video.can_publish_sources == sources
    assert not video.room_admin and not video.room_create and not video.room_list
    raw = jwt.decode(token, options={"verify_signature": False})
    assert raw["exp"] - raw["nbf"] == TOKEN_SECONDS
    assert time.time() < raw["exp"] <= time.time() + TOKEN_SECONDS + 2
    return claims


def signed_webhook(
    event: WebhookEvent, *, key: str = MAIN_KEY, secret: str = MAIN_SECRET
) -> tuple[str, str]:
    """(body, Authorization) exactly as LiveKit sends a webhook: a JWT whose ``sha256`` claim
    is the base64 SHA-256 of the body, signed with the instance's key and secret."""
    body = MessageToJson(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = AccessToken(key, secret).with_sha256(digest).to_jwt()
    return body, token


def participant_event(name: str, room: str, identity: str = "") -> WebhookEvent:
    return WebhookEvent(
        event=name,
        room=Room(name=room, sid="RM_test"),
        participant=ParticipantInfo(identity=identity) if identity else None,
        id=f"EV_{uuid.uuid4().hex[:10]}",
        created_at=int(time.time()),
    )


async def no_event(phone: Any, event: str, wait: float = 1.5) -> None:
    """Bounded wait: nothing more of ``event`` arrives on this device."""
    with pytest.raises(TimeoutError):
        await phone.next(event, timeout=wait)
