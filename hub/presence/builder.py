"""Builds presence over the device registry the fan-out also routes by."""

from __future__ import annotations

from hub.foundation import Foundation
from hub.presence.service import PresenceService
from hub.settings.sections import PresenceSettings
from storage.redis.presence import RedisDeviceRegistry


def build_presence(
    settings: PresenceSettings, base: Foundation, devices: RedisDeviceRegistry, node_id: str
) -> PresenceService:
    return PresenceService(
        devices=devices,
        memberships=base.memberships,
        last_seen=base.users,
        fanout=base.fanout,
        clock=base.clock,
        node_id=node_id,
        ttl_seconds=settings.device_ttl_seconds,
        max_devices_per_user=settings.max_devices_per_user,
    )
