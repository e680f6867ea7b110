"""Who gets a push, and when a failed one is tried again: pure functions, no I/O.

``wants_message_push`` is the one place that decides whether a stored message lights up a
recipient's device; every fact it needs is gathered by the worker for a whole batch first.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.push.jobs import MessageItem

# Relations that never alert: a reaction, an edit (the original already did), a deletion.
SILENT_RELATIONS = frozenset({"reaction", "edit", "delete"})


@dataclass(frozen=True, slots=True)
class MessageRecipient:
    """One device of one recipient of one stored message, at the moment the push is decided."""

    item: MessageItem
    device_online: bool
    muted: bool


def wants_message_push(recipient: MessageRecipient) -> bool:
    """A device gets an alert for a message when it is someone else's message, not a
    message request (a stranger's first messages wait in the requests list, silently), one
    that alerts at all, in a conversation that is not muted, and the device has no live
    socket (a connected device has the socket event already)."""
    item = recipient.item
    return (
        item.user_id != item.sender_id
        and not item.request
        and item.relates_type not in SILENT_RELATIONS
        and not recipient.muted
        and not recipient.device_online
    )


def retry_delay_ms(attempt: int, base_ms: int, retry_after_seconds: float | None) -> int:
    """Before try ``attempt + 1``: what the provider asked for (``Retry-After``), else the
    base doubled per try (1 s, 2 s, 4 s…), capped at ten minutes."""
    if retry_after_seconds is not None and retry_after_seconds >= 0:
        return int(retry_after_seconds * 1000)
    return int(min(base_ms * 2 ** (attempt - 1), 600_000))


def is_expired(expires_at: int | None, now_ms: int) -> bool:
    """A push past its purpose (a call that no longer rings) is dropped, not sent."""
    return expires_at is not None and now_ms >= expires_at
