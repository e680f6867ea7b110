"""Who may enter which LiveKit room, and opening a band's room on an instance.

A user gets a token only for a room they belong to: a live call they are a participant of,
a band they are a member of, or their own personal room. Everyone gets their own token.
"""

from __future__ import annotations

import json

from hub.calls.livekit import (
    LiveKitInstances,
    OpenedRoom,
    RoomGrant,
    band_room,
    parse_room,
    personal_room,
)
from hub.calls.ports import Memberships, UserNames
from hub.calls.service import CallService
from hub.clock import Clock
from hub.errors import Forbidden, NotFound

# Only its owner gets tokens for a personal room, so LiveKit need not cap it (0: no cap).
PERSONAL_ROOM_MAX_PARTICIPANTS = 0


class RoomAccess:
    def __init__(
        self,
        *,
        livekit: LiveKitInstances,
        calls: CallService,
        memberships: Memberships,
        users: UserNames,
        clock: Clock,
    ) -> None:
        self._livekit = livekit
        self._calls = calls
        self._memberships = memberships
        self._users = users
        self._clock = clock

    async def token_for(self, user_id: str, instance: str, room: str) -> RoomGrant:
        self._livekit.instance(instance)
        parsed = parse_room(room)
        media = "video"
        if parsed is None:
            raise Forbidden("you may join only your calls, your bands' rooms and your own room")
        kind, target = parsed
        if kind == "call":
            media = (await self._calls.ensure_can_join(user_id, instance, target)).media
        elif kind == "band":
            if user_id not in await self._memberships.band_member_ids(target):
                raise Forbidden("only the band's members may join its room")
        elif target != user_id:
            raise Forbidden("a personal room is for its owner")
        user = await self._users.get(user_id)
        return self._livekit.mint(
            instance,
            room,
            identity=user_id,
            name=user.name if user else user_id,
            media=media,
            now_ms=self._clock(),
        )

    async def open_room(self, user_id: str, instance: str, band: str | None) -> OpenedRoom:
        """Create the band's room (or, with no band, the user's own) on the instance."""
        config = self._livekit.instance(instance)
        if band is not None:
            members = await self._memberships.band_member_ids(band)
            if user_id not in members:
                # As on every band route: a non-member cannot tell a band from a missing one.
                raise NotFound("no such band")
            room, limit, metadata = band_room(band), len(members), {"band": band}
        else:
            room, limit = personal_room(user_id), PERSONAL_ROOM_MAX_PARTICIPANTS
            metadata = {"owner": user_id}
        sid = await self._livekit.create_room(
            instance, room, max_participants=limit, metadata=json.dumps(metadata)
        )
        return OpenedRoom(instance, room, config.url, sid)
