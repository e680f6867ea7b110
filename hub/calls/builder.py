"""Builds calls: the LiveKit instances, the call service over Redis, who may enter rooms."""

from __future__ import annotations

from dataclasses import dataclass

from hub.calls.livekit import LiveKitInstances
from hub.calls.ports import CallPushes
from hub.calls.rooms import RoomAccess
from hub.calls.service import CallService
from hub.foundation import Foundation
from hub.settings.sections import CallSettings
from storage.redis.calls import RedisCallStore
from storage.sql.calls import CallHistoryStore


@dataclass(frozen=True, slots=True)
class Calls:
    livekit: LiveKitInstances
    service: CallService
    rooms: RoomAccess


def build_calls(settings: CallSettings, base: Foundation, pushes: CallPushes) -> Calls:
    livekit = LiveKitInstances(
        settings.livekit_instances, token_seconds=settings.livekit_token_seconds
    )
    service = CallService(
        calls=RedisCallStore(base.redis, base.keys),
        history=CallHistoryStore(base.pool),
        memberships=base.memberships,
        users=base.users,
        livekit=livekit,
        fanout=base.fanout,
        clock=base.clock,
        ring_seconds=settings.ring_seconds,
        max_seconds=settings.max_seconds,
        pushes=pushes,
    )
    rooms = RoomAccess(
        livekit=livekit,
        calls=service,
        memberships=base.memberships,
        users=base.users,
        clock=base.clock,
    )
    return Calls(livekit, service, rooms)
