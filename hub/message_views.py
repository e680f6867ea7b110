"""How a stored copy of a message looks on the wire (``message:new``, sync, history)."""

from __future__ import annotations

import base64
from typing import Any

from storage.messages import StoredCopy


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def copy_payload(copy: StoredCopy) -> dict[str, Any]:
    """``message:new`` as one user sees it: ``seq`` is theirs, ``peer`` opens the box."""
    body: dict[str, Any] = {
        "id": copy.message_id,
        "from": copy.sender_id,
        "ciphertext": b64(copy.ciphertext),
        "nonce": b64(copy.nonce),
        "ts": copy.ts,
        "seq": copy.seq,
        "peer": copy.peer,
    }
    if copy.band_id is not None:
        body["band"] = copy.band_id
    else:
        body["to"] = copy.conversation_id if copy.sender_id == copy.user_id else copy.user_id
    return body
