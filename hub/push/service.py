"""Registering a device's push token, and a conversation's notification level.

Only a device itself registers its token: another device of the same user is ``forbidden``
(it could otherwise redirect someone's alerts), another user's device is ``not_found`` as
a missing one. A provider the hub has no credentials for is ``not_configured`` (503).
"""

from __future__ import annotations

from typing import Protocol

from hub.accounts.tokens import AccessClaims
from hub.clock import Clock
from hub.errors import Forbidden, InvalidPayload, NotConfigured, NotFound
from hub.push.views import (
    NotificationsView,
    PushStatusView,
    notifications_view,
    push_status_view,
)
from storage.sql.push import NotificationLevel, NotificationStore, PushTokenRow, PushTokenStore
from storage.sql.sessions import DeviceRow, SessionRow


class DevicesOf(Protocol):
    async def get(self, session_id: str) -> SessionRow | None: ...

    async def devices(self, user_id: str) -> list[DeviceRow]: ...


class Conversations(Protocol):
    async def band_member_ids(self, band_id: str) -> set[str]: ...

    async def visible_among(self, user_id: str, others: list[str]) -> set[str]: ...


class Audience(Protocol):
    async def joins(self, user_id: str) -> None: ...


class PushService:
    def __init__(
        self,
        *,
        tokens: PushTokenStore,
        notifications: NotificationStore,
        sessions: DevicesOf,
        conversations: Conversations,
        configured: frozenset[str],
        audience: Audience | None,
        clock: Clock,
    ) -> None:
        self._tokens = tokens
        self._notifications = notifications
        self._sessions = sessions
        self._conversations = conversations
        self._configured = configured
        self._audience = audience
        self._clock = clock

    async def _own_device(self, claims: AccessClaims, device_id: str) -> None:
        """The device of this token, or ``forbidden`` (another of yours) / ``not_found``."""
        session = await self._sessions.get(claims.session_id)
        if session is not None and session.device_id == device_id:
            return
        if any(d.id == device_id for d in await self._sessions.devices(claims.user_id)):
            raise Forbidden("only the device itself registers its push token")
        raise NotFound("no such device")

    async def register(
        self,
        claims: AccessClaims,
        device_id: str,
        *,
        provider: str,
        token: str,
        voip_token: str | None,
        environment: str,
    ) -> PushStatusView:
        await self._own_device(claims, device_id)
        if provider not in self._configured:
            raise NotConfigured(f"this hub sends no {provider} pushes")
        row = PushTokenRow(claims.user_id, device_id, provider, token, voip_token, environment)
        if self._audience is not None:
            await self._audience.joins(claims.user_id)  # before the token can be found
        if not await self._tokens.register(row, self._clock()):
            raise NotFound("no such device")
        return push_status_view(row)

    async def unregister(self, claims: AccessClaims, device_id: str) -> None:
        await self._own_device(claims, device_id)
        await self._tokens.unregister(claims.user_id, device_id)

    async def statuses(self, user_id: str) -> dict[str, PushStatusView]:
        """Each registered device's push, for the device list."""
        return {r.device_id: push_status_view(r) for r in await self._tokens.tokens_of([user_id])}

    async def _access_conversation(self, user_id: str, conversation_id: str) -> None:
        """A band the user is in, or a contact (a shared band or an accepted conversation); anything
        else is ``not_found`` (a band you are not in looks like no band)."""
        if conversation_id == user_id:
            raise NotFound("no such conversation")
        if user_id in await self._conversations.band_member_ids(conversation_id):
            return
        if conversation_id in await self._conversations.visible_among(user_id, [conversation_id]):
            return
        raise NotFound("no such conversation")

    async def set_notifications(
        self, user_id: str, conversation_id: str, level: str, muted_until: int | None
    ) -> NotificationsView:
        await self._access_conversation(user_id, conversation_id)
        now = self._clock()
        if level == "all" and muted_until is not None:
            raise InvalidPayload("mutedUntil goes with level none", details={"field": "mutedUntil"})
        if muted_until is not None and muted_until <= now:
            raise InvalidPayload("mutedUntil is in the past", details={"field": "mutedUntil"})
        stored = NotificationLevel(level, muted_until)
        await self._notifications.set_level(user_id, conversation_id, stored, now)
        return notifications_view(conversation_id, stored, now)

    async def notifications(self, user_id: str, conversation_id: str) -> NotificationsView:
        await self._access_conversation(user_id, conversation_id)
        level = await self._notifications.level_of(user_id, conversation_id)
        return notifications_view(conversation_id, level, self._clock())
