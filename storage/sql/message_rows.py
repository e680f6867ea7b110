"""The rows of the message tables as the hub sees them, and how a row becomes one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

COPY_COLUMNS = (
    "user_id, seq, message_id, sender_id, band_id, conversation_id, encrypted_for, "
    "ciphertext, nonce, ts, relates_type, relates_to, request"
)
# What a message may relate to another with: the client sends the first two, the hub makes
# edits (``message:edit``) and deletes (``message:delete``, the tombstone's relation).
RELATION_TYPES = ("reaction", "reply", "edit", "delete")


class MissingUser(Exception):
    """A recipient of the message does not exist; nothing was stored."""


class AttachmentNotBindable(MissingUser):
    """An attachment of the message could not be bound in its transaction (a concurrent
    send bound it, the sweep removed it); nothing was stored. A ``MissingUser`` so the send
    queue retries the batch's messages one by one."""


class OriginalDeleted(MissingUser):
    """An edit's original was deleted (perhaps a moment ago); nothing was stored. A kind of
    ``MissingUser`` so the send queue retries the batch's messages one by one."""


@dataclass(frozen=True, slots=True)
class CopyToStore:
    """One user's copy: ``peer`` is whose public key opens it with that user's secret key."""

    user_id: str
    peer: str
    ciphertext: bytes
    nonce: bytes


@dataclass(frozen=True, slots=True)
class StoredCopy:
    user_id: str
    seq: int
    message_id: str
    sender_id: str
    band_id: str | None
    conversation_id: str
    peer: str
    ciphertext: bytes
    nonce: bytes
    ts: int
    relates_type: str | None = None
    relates_to: str | None = None
    # The recipient's copy of a message request (sent to someone who is not a contact): the
    # push code sends no notification for it, and ``message:new`` says ``request: true``.
    request: bool = False

    @property
    def erased(self) -> bool:
        """Deleted for everyone: its ciphertext is gone (a real box is never empty)."""
        return not self.ciphertext


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store: ``copies`` holds one entry per user who may read it."""

    id: str
    sender_id: str
    sender_device: str
    recipient_id: str | None
    band_id: str | None
    ts: int
    copies: Sequence[CopyToStore]
    relates_type: str | None = None
    relates_to: str | None = None
    # Attachment ids bound to this message in its own transaction.
    attachments: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    sender_id: str
    recipient_id: str | None
    band_id: str | None
    ts: int


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """``copies`` is empty when the message already existed (a resend) or was refused
    (``refusal``: the consent rule's verdict, nothing stored). ``accepted_request`` names the
    requester whose request this message (a reply) accepted."""

    message: StoredMessage
    copies: list[StoredCopy]
    refusal: str | None = None
    accepted_request: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptChange:
    message_id: str
    sender_id: str


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    conversation_id: str
    band_id: str | None
    last: StoredCopy
    unread: int


def copy_of(row: asyncpg.Record) -> StoredCopy:
    band = row["band_id"]
    return StoredCopy(
        user_id=str(row["user_id"]),
        seq=row["seq"],
        message_id=str(row["message_id"]),
        sender_id=str(row["sender_id"]),
        band_id=str(band) if band else None,
        conversation_id=str(row["conversation_id"]),
        peer=str(row["encrypted_for"]),
        ciphertext=bytes(row["ciphertext"]),
        nonce=bytes(row["nonce"]),
        ts=row["ts"],
        relates_type=row["relates_type"],
        relates_to=str(row["relates_to"]) if row["relates_to"] else None,
        request=row["request"],
    )


def message_of(row: asyncpg.Record) -> StoredMessage:
    return StoredMessage(
        id=str(row["id"]),
        sender_id=str(row["sender_id"]),
        recipient_id=str(row["recipient_id"]) if row["recipient_id"] else None,
        band_id=str(row["band_id"]) if row["band_id"] else None,
        ts=row["ts"],
    )
