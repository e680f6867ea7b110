"""Devices: the user's list of them (with which is this one and which are online), renaming
and removing one, and ``devices:changed`` to the user's connected devices after a change.

Removing a device revokes its session at once (see ``sessions.py``) and deletes it with its
biometric keys; removing another device than this one needs a recent authentication.
"""

from __future__ import annotations

from typing import Protocol

from hub.accounts.sessions import SessionService
from hub.accounts.tokens import AccessClaims
from hub.accounts.views import DeviceItemView, DevicesView, device_item_view, devices_changed
from hub.clock import Clock
from hub.errors import NotFound
from hub.fanout import Delivery, Fanout
from hub.push.views import PushStatusView
from storage.sql.sessions import SessionStore


class OnlineDevices(Protocol):
    async def devices_online(self, user_id: str, *, now_ms: int) -> set[str]:
        """The device ids with a live socket on any node."""


class PushStatuses(Protocol):
    async def statuses(self, user_id: str) -> dict[str, PushStatusView]:
        """Each registered device's push (never its token)."""


class DeviceService:
    def __init__(
        self,
        *,
        store: SessionStore,
        online: OnlineDevices,
        pushes: PushStatuses,
        sessions: SessionService,
        fanout: Fanout,
        clock: Clock,
    ) -> None:
        self._store = store
        self._online = online
        self._pushes = pushes
        self._sessions = sessions
        self._fanout = fanout
        self._clock = clock

    async def _items(self, user_id: str, current: str | None) -> list[DeviceItemView]:
        devices = await self._store.devices(user_id)
        online = await self._online.devices_online(user_id, now_ms=self._clock())
        pushes = await self._pushes.statuses(user_id)
        return [
            device_item_view(
                d, current=d.id == current, online=d.id in online, push=pushes.get(d.id)
            )
            for d in devices
        ]

    async def _current(self, claims: AccessClaims) -> str | None:
        session = await self._store.get(claims.session_id)
        return session.device_id if session is not None else None

    async def list(self, claims: AccessClaims) -> DevicesView:
        return DevicesView(items=await self._items(claims.user_id, await self._current(claims)))

    async def rename(self, claims: AccessClaims, device_id: str, name: str) -> DeviceItemView:
        device = await self._store.rename_device(claims.user_id, device_id, name)
        if device is None:
            raise NotFound("no such device")
        await self.announce(claims.user_id)
        online = await self._online.devices_online(claims.user_id, now_ms=self._clock())
        current = await self._current(claims)
        push = (await self._pushes.statuses(claims.user_id)).get(device.id)
        return device_item_view(
            device, current=device.id == current, online=device.id in online, push=push
        )

    async def remove(self, claims: AccessClaims, device_id: str) -> None:
        """This device needs no reauthentication (it is a logout); another one does."""
        if device_id != await self._current(claims):
            self._sessions.require_recent(claims)
        revoked = await self._store.remove_device(claims.user_id, device_id, self._clock())
        if revoked is None:
            raise NotFound("no such device")
        await self._sessions.ended(revoked, "device_removed")
        await self.announce(claims.user_id)

    async def announce(self, user_id: str) -> None:
        """``devices:changed`` to the user's connected devices (``current`` is false in it:
        each device knows its own id)."""
        event = devices_changed(await self._items(user_id, None))
        await self._fanout.deliver([Delivery(user_id, "devices:changed", event.wire())])
