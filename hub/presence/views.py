"""How presence looks on the wire: the ``presence`` push and the items of the
``presence:subscribe`` answer are one shape, built by ``presence_view``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hub.fanout import PresenceStatus, UserPresence
from hub.protocol.models import View, pushed


@pushed("presence")
class PresenceView(View):
    """A user's presence, as a subscriber sees it."""

    userId: str
    status: PresenceStatus = Field(description="online: any device connected to any node")
    lastSeen: int | None = Field(
        description="null while online; when the last device left, or null if never seen"
    )


def presence_view(presence: UserPresence) -> dict[str, Any]:
    """A ``PresenceView`` as the plain dict the socket sends (no model built per push)."""
    return {"userId": presence.user_id, "status": presence.status, "lastSeen": presence.last_seen}
