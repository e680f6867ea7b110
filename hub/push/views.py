"""The shapes push sends over REST: a device's push registration as ``GET /api/devices`` and
``PUT /api/devices/:id/push`` show it (never the token), and a conversation's notification
level."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field

from hub.protocol.models import View
from storage.sql.push import NotificationLevel, PushTokenRow

Provider = Literal["apns", "fcm"]
Environment = Literal["production", "sandbox"]
Level = Literal["all", "none"]


class PushStatusView(View):
    """What push this device gets; the tokens themselves are never shown back."""

    provider: Provider
    environment: Environment
    voip: bool = Field(description="a VoIP (PushKit) token is registered: calls ring it")


def push_status_view(row: PushTokenRow) -> PushStatusView:
    return PushStatusView(
        provider=cast("Provider", row.provider),
        environment=cast("Environment", row.environment),
        voip=row.voip_token is not None,
    )


class NotificationsView(View):
    """A conversation's notification level for you: ``none`` sends no message push (the
    badge still counts its messages; calls still ring) until ``mutedUntil`` (ms) or, when
    that is null, until changed."""

    conversationId: str
    level: Level
    mutedUntil: int | None


def notifications_view(
    conversation_id: str, level: NotificationLevel | None, now_ms: int
) -> NotificationsView:
    if (
        level is None
        or level.level == "all"
        or (level.muted_until is not None and level.muted_until <= now_ms)
    ):
        return NotificationsView(conversationId=conversation_id, level="all", mutedUntil=None)
    return NotificationsView(
        conversationId=conversation_id, level="none", mutedUntil=level.muted_until
    )
