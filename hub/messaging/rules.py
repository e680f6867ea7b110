"""Pure rules of a message's later life: what a reaction, reply or edit may point at, and
who may delete what. They take what storage found and ``now``; they raise ``HubError``s."""

from __future__ import annotations

from hub.errors import Forbidden, InvalidPayload, NotFound
from storage.sql.message_lifecycle import RelatedMessage


def check_relation_target(target: RelatedMessage | None, conversation_id: str) -> RelatedMessage:
    """A reaction or reply points at a message the sender holds, in the same conversation,
    not deleted, and not itself an edit or tombstone. A message the sender cannot see and
    one that does not exist are the same ``not_found``."""
    if target is None or target.conversation_id != conversation_id:
        raise NotFound("no such message in this conversation")
    if target.deleted:
        raise NotFound("this message was deleted")
    if target.relates_type in ("edit", "delete"):
        raise InvalidPayload("relate to the original message, not to an edit")
    return target


def check_edit(
    target: RelatedMessage | None, editor_id: str, now_ms: int, window_ms: int
) -> RelatedMessage:
    """An edit replaces the editor's own original message (not an edit: edits always point at
    the original), not deleted, within ``window_ms`` of it."""
    if target is None:
        raise NotFound("no such message")
    if target.sender_id != editor_id:
        raise Forbidden("only the sender may edit a message")
    if target.deleted:
        raise NotFound("this message was deleted")
    if target.relates_type in ("edit", "delete"):
        raise InvalidPayload("'replaces' is the original message, not an edit")
    if now_ms - target.ts > window_ms:
        raise Forbidden("this message is too old to edit", details={"windowMs": window_ms})
    return target


def may_delete(target: RelatedMessage, deleter_id: str, band_admin: bool) -> bool:
    """The sender may delete their message; in a band, so may an owner or admin."""
    return target.sender_id == deleter_id or (target.band_id is not None and band_admin)
