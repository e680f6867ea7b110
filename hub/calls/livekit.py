"""The LiveKit instances (main, meet, chat): access tokens, room creation, webhook checks.

A token is minted per participant and per room: identity = user id, room-scoped grants,
a short TTL, screen sharing only on instances meant for it. The hub never hands one user's
token to another. The server API (RoomService over Twirp) lives at each instance's
``api_url``, so tests can point it at a local fake.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from livekit.api import (
    AccessToken,
    CreateRoomRequest,
    LiveKitAPI,
    RoomParticipantIdentity,
    ServerError,
    TokenVerifier,
    VideoGrants,
    WebhookReceiver,
)

from hub.errors import HubError, NotFound, UpstreamUnavailable
from hub.settings.integrations import LIVEKIT_INSTANCE_NAMES, LiveKitInstanceConfig

log = logging.getLogger(__name__)

# Where participants may share their screen: "main" carries general calls with screen sharing.
SCREEN_SHARE_INSTANCES = frozenset({"main"})
ROOM_EMPTY_TIMEOUT_SECONDS = 300
_ROOM = re.compile(
    r"^(call|band|user)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


class InstanceNotConfigured(HubError):
    """The hub has no URL, key and secret for that instance: an operator must set them."""

    code = "not_configured"
    http_status = 503


@dataclass(frozen=True, slots=True)
class RoomGrant:
    """One participant's way into one room: never shown to anyone else."""

    instance: str
    room: str
    url: str
    token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class OpenedRoom:
    """A room that exists on an instance: where to connect, and LiveKit's id of it."""

    instance: str
    room: str
    url: str
    sid: str


def call_room(call_id: str) -> str:
    return f"call-{call_id}"


def band_room(band_id: str) -> str:
    return f"band-{band_id}"


def personal_room(user_id: str) -> str:
    return f"user-{user_id}"


def parse_room(room: str) -> tuple[str, str] | None:
    """(``call`` | ``band`` | ``user``, id) for a room the hub names, else None."""
    match = _ROOM.match(room)
    return (match.group(1), match.group(2)) if match else None


def publish_sources(instance: str, media: str) -> list[str]:
    """The track sources a participant may publish: the microphone always, the camera for
    video, the screen only where the instance allows it."""
    sources = ["camera", "microphone"] if media == "video" else ["microphone"]
    if instance in SCREEN_SHARE_INSTANCES:
        sources += ["screen_share", "screen_share_audio"]
    return sources


class LiveKitInstances:
    def __init__(self, configs: Sequence[LiveKitInstanceConfig], *, token_seconds: int) -> None:
        self._configs = {c.name: c for c in configs}
        self._token_seconds = token_seconds

    def instance(self, name: str) -> LiveKitInstanceConfig:
        """The instance's configuration, or a clear refusal naming what to set."""
        if name not in LIVEKIT_INSTANCE_NAMES:
            raise NotFound(f"no LiveKit instance {name[:32]!r}")
        config = self._configs.get(name)
        if config is None:
            variable = f"LIVEKIT_{name.upper()}"
            raise InstanceNotConfigured(
                f"the LiveKit instance {name!r} is not configured on this hub "
                f"({variable}_URL, {variable}_API_KEY and {variable}_API_SECRET)"
            )
        return config

    def mint(
        self, instance: str, room: str, *, identity: str, name: str, media: str, now_ms: int
    ) -> RoomGrant:
        config = self.instance(instance)
        grants = VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_publish_sources=publish_sources(instance, media),
        )
        token = (
            AccessToken(config.api_key, config.api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_grants(grants)
            .with_ttl(datetime.timedelta(seconds=self._token_seconds))
            .to_jwt()
        )
        expires_at = now_ms + self._token_seconds * 1000
        return RoomGrant(instance, room, config.url, token, expires_at)

    async def create_room(
        self, instance: str, room: str, *, max_participants: int, metadata: str
    ) -> str:
        """Create (or find: LiveKit's CreateRoom is idempotent) the room; its LiveKit sid."""
        config = self.instance(instance)
        request = CreateRoomRequest(
            name=room,
            empty_timeout=ROOM_EMPTY_TIMEOUT_SECONDS,
            max_participants=max_participants,
            metadata=metadata,
        )
        try:
            async with LiveKitAPI(config.api_url, config.api_key, config.api_secret) as client:
                created = await client.room.create_room(request)
        except ServerError as exc:
            log.warning("LiveKit %s refused CreateRoom: %s", instance, exc)
            raise UpstreamUnavailable(
                f"the LiveKit instance {instance!r} refused to create the room ({exc.code})"
            ) from None
        except Exception:  # aiohttp errors and timeouts: the server did not answer
            log.warning("LiveKit %s did not answer CreateRoom", instance, exc_info=True)
            raise UpstreamUnavailable(
                f"the LiveKit instance {instance!r} did not answer; retry shortly"
            ) from None
        return str(created.sid)

    def configured(self) -> list[str]:
        return sorted(self._configs)

    async def remove_participant(self, instance: str, room: str, identity: str) -> None:
        """Throw ``identity`` out of ``room`` through LiveKit's server API (RoomService
        ``RemoveParticipant``). Someone not in the room (LiveKit answers not_found) is fine;
        a LiveKit that does not answer is logged: their token expires by itself."""
        config = self.instance(instance)
        request = RoomParticipantIdentity(room=room, identity=identity)
        try:
            async with LiveKitAPI(config.api_url, config.api_key, config.api_secret) as client:
                await client.room.remove_participant(request)
        except ServerError as exc:
            if exc.code != "not_found":
                log.warning("LiveKit %s refused RemoveParticipant: %s", instance, exc)
        except Exception:
            log.warning("LiveKit %s did not answer RemoveParticipant", instance, exc_info=True)

    def webhook_receiver(self, instance: str) -> WebhookReceiver:
        """Checks a webhook against that instance's own key and secret."""
        config = self.instance(instance)
        return WebhookReceiver(TokenVerifier(config.api_key, config.api_secret))
