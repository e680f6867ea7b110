"""The provider requests of each push kind, as APNs and FCM document them: pure functions.

Never plaintext, never anyone's ids but the sender's: a message push says "New message" and
carries the ids the app's notification extension needs to fetch and decrypt it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hub.push.jobs import PushKind

ALERT_TEXT = "New message"
DAY_SECONDS = 86_400
CALL_ENDED_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Push:
    """One push for one device, ready to send: ``fields`` is the ``hub`` object."""

    kind: PushKind
    fields: dict[str, Any]
    badge: int | None = None
    expires_at: int | None = None  # ms; calls: the ring deadline


@dataclass(frozen=True, slots=True)
class ApnsRequest:
    headers: dict[str, str]
    body: bytes
    voip: bool


def apns_request(push: Push, topic: str, now_ms: int) -> ApnsRequest:
    """Headers (without ``authorization``) and JSON body of one APNs request."""
    now_s = now_ms // 1000
    hub = {"type": push.kind, **push.fields}
    headers: dict[str, str]
    body: dict[str, Any]
    if push.kind == "message":
        body = {
            "aps": {
                "alert": {"title": ALERT_TEXT, "body": ALERT_TEXT},
                "badge": push.badge or 0,
                "sound": "default",
                "mutable-content": 1,
                "thread-id": push.fields["conversationId"],
            },
            "hub": hub,
        }
        headers = _headers("alert", topic, 10, now_s + DAY_SECONDS)
    elif push.kind == "call":
        expires = (push.expires_at or now_ms) // 1000
        headers = _headers("voip", f"{topic}.voip", 10, expires)
        body = {"hub": hub}
    elif push.kind == "badge":
        body = {"aps": {"badge": push.badge or 0, "content-available": 1}}
        headers = _headers("background", topic, 5, now_s + DAY_SECONDS, collapse="badge")
    elif push.kind == "call_ended":
        body = {"aps": {"content-available": 1}, "hub": hub}
        collapse = str(push.fields["callId"])
        headers = _headers("background", topic, 5, now_s + CALL_ENDED_SECONDS, collapse=collapse)
    else:  # message_deleted: the app withdraws the notification it showed
        body = {"aps": {"content-available": 1}, "hub": hub}
        headers = _headers("background", topic, 5, now_s + DAY_SECONDS)
    return ApnsRequest(headers, orjson.dumps(body), push.kind == "call")


def _headers(
    push_type: str, topic: str, priority: int, expiration: int, *, collapse: str | None = None
) -> dict[str, str]:
    headers = {
        "apns-push-type": push_type,
        "apns-topic": topic,
        "apns-priority": str(priority),
        "apns-expiration": str(max(0, expiration)),
    }
    if collapse is not None:
        headers["apns-collapse-id"] = collapse[:64]
    return headers


def fcm_message(push: Push, token: str, now_ms: int) -> dict[str, Any]:
    """The ``message`` of one FCM HTTP v1 ``messages:send``: a data message (values are
    strings), high priority where the phone must wake (messages, calls, call ends)."""
    data = {"type": push.kind, **{k: _string(v) for k, v in push.fields.items()}}
    if push.badge is not None:
        data["badge"] = str(push.badge)
    if push.kind == "call":
        ttl = max(0, ((push.expires_at or now_ms) - now_ms) // 1000)
    elif push.kind == "call_ended":
        ttl = CALL_ENDED_SECONDS
    else:
        ttl = DAY_SECONDS
    priority = "normal" if push.kind == "badge" else "high"
    return {"token": token, "data": data, "android": {"priority": priority, "ttl": f"{ttl}s"}}


def _string(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
