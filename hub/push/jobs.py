"""What the push queue carries: fan-out jobs (a batch of stored messages, a call's notice, a
badge change, a deletion) that a worker expands into one push per device that is not
connected, and ``DeviceJob``s (one device, one push) for retries and a burst's last push.

Jobs are JSON (orjson) with a kind ``k``; ``encode_job``/``decode_job`` are the only code
that knows their wire shape. A device job names the device, not its token: the token is read
again when it is sent, so a token removed or moved meanwhile is respected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

PushKind = Literal["message", "call", "call_ended", "badge", "message_deleted"]
CallEndReason = Literal["cancelled", "missed", "answered_elsewhere", "declined"]


@dataclass(frozen=True, slots=True)
class MessageItem:
    """One recipient's copy of a stored message, as much as a push needs (no content)."""

    user_id: str
    conversation_id: str
    message_id: str
    sender_id: str
    seq: int
    band_id: str | None
    relates_type: str | None
    stored_at: int
    # The recipient's copy of a message request (to someone who is not a contact): it alerts
    # nobody. Last and defaulted, so a job queued by an older node still decodes.
    request: bool = False


@dataclass(frozen=True, slots=True)
class MessagesStored:
    items: tuple[MessageItem, ...]


@dataclass(frozen=True, slots=True)
class CallRinging:
    """``call:incoming`` for ``users``: ``fields`` is the ``hub`` object of the push."""

    users: tuple[str, ...]
    call_id: str
    fields: dict[str, Any]
    ring_deadline: int
    at: int


@dataclass(frozen=True, slots=True)
class CallEnded:
    users: tuple[str, ...]
    call_id: str
    reason: CallEndReason
    at: int


@dataclass(frozen=True, slots=True)
class BadgeChanged:
    user_id: str
    at: int


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    users: tuple[str, ...]
    message_id: str
    at: int


@dataclass(frozen=True, slots=True)
class DeviceJob:
    """One push to one device. ``fields`` is the ``hub`` object (message: without the
    badge, computed when sent); ``window`` the coalescing window a burst's last push reopens."""

    user_id: str
    device_id: str
    kind: PushKind
    fields: dict[str, Any]
    at: int
    expires_at: int | None = None
    attempt: int = 1
    voip: bool = False
    window: tuple[str, str, str] | None = field(default=None)


Job = MessagesStored | CallRinging | CallEnded | BadgeChanged | MessageDeleted | DeviceJob


def encode_job(job: Job) -> bytes:
    wire: dict[str, Any]
    if isinstance(job, MessagesStored):
        wire = {
            "k": "messages",
            "items": [
                [
                    i.user_id,
                    i.conversation_id,
                    i.message_id,
                    i.sender_id,
                    i.seq,
                    i.band_id,
                    i.relates_type,
                    i.stored_at,
                    i.request,
                ]
                for i in job.items
            ],
        }
    elif isinstance(job, CallRinging):
        wire = {
            "k": "call",
            "users": list(job.users),
            "call": job.call_id,
            "fields": job.fields,
            "deadline": job.ring_deadline,
            "at": job.at,
        }
    elif isinstance(job, CallEnded):
        wire = {
            "k": "call_ended",
            "users": list(job.users),
            "call": job.call_id,
            "reason": job.reason,
            "at": job.at,
        }
    elif isinstance(job, BadgeChanged):
        wire = {"k": "badge", "user": job.user_id, "at": job.at}
    elif isinstance(job, MessageDeleted):
        wire = {"k": "deleted", "users": list(job.users), "message": job.message_id, "at": job.at}
    else:
        wire = {
            "k": "device",
            "user": job.user_id,
            "device": job.device_id,
            "kind": job.kind,
            "fields": job.fields,
            "at": job.at,
            "exp": job.expires_at,
            "attempt": job.attempt,
            "voip": job.voip,
            "window": list(job.window) if job.window else None,
        }
    return orjson.dumps(wire)


def decode_job(raw: bytes) -> Job | None:
    """The job, or None for a kind this node does not know (a newer node's)."""
    wire = orjson.loads(raw)
    kind = wire.get("k")
    if kind == "messages":
        return MessagesStored(tuple(MessageItem(*item) for item in wire["items"]))
    if kind == "call":
        return CallRinging(
            tuple(wire["users"]), wire["call"], wire["fields"], wire["deadline"], wire["at"]
        )
    if kind == "call_ended":
        return CallEnded(tuple(wire["users"]), wire["call"], wire["reason"], wire["at"])
    if kind == "badge":
        return BadgeChanged(wire["user"], wire["at"])
    if kind == "deleted":
        return MessageDeleted(tuple(wire["users"]), wire["message"], wire["at"])
    if kind == "device":
        window = wire.get("window")
        return DeviceJob(
            wire["user"],
            wire["device"],
            wire["kind"],
            wire["fields"],
            wire["at"],
            wire.get("exp"),
            wire.get("attempt", 1),
            wire.get("voip", False),
            (window[0], window[1], window[2]) if window else None,
        )
    return None
