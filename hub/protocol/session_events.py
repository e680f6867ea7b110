"""The events the hub pushes about a socket's own session (``handlers/session.py``)."""

from __future__ import annotations

from typing import Literal

from hub.protocol.models import View, pushed


@pushed("session:expired")
class SessionExpiredEvent(View):
    """Sent just before the hub disconnects a socket whose access token ran out and was not
    replaced with ``session:refresh``: the app refreshes over REST and reconnects."""

    reason: Literal["token_expired"]


def session_expired() -> dict[str, str]:
    """The ``session:expired`` payload."""
    return {"reason": "token_expired"}
