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


RevocationReason = Literal[
    "logout", "logout_all", "password_changed", "token_reused", "replaced", "device_removed"
]


@pushed("session:replaced")
class SessionReplacedEvent(View):
    """Sent to a socket when a newer socket of the same device connected (on any node),
    just before the hub disconnects it: a device has one live socket. Its tokens stay valid."""

    reason: Literal["new_connection"]


@pushed("session:revoked")
class SessionRevokedEvent(View):
    """Sent to every live socket of a session that was just revoked, on whichever node,
    just before the hub disconnects it: its tokens are refused from now on (REST 401
    ``session_revoked``). ``replaced``: the same device logged in again."""

    reason: RevocationReason
