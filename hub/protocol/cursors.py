"""Opaque list cursors: the position after the last item of a page, as a short string.

Clients must treat a cursor as opaque (it is base64url of a small JSON array) so the order a
list is kept in can change without breaking them; a cursor that does not decode is the
client's mistake (``invalid_payload``), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

from hub.errors import InvalidPayload

Item = TypeVar("Item")
Part = TypeVar("Part")
MAX_CURSOR_CHARS = 512
MAX_CURSOR_INT = 2**62  # far above any sequence or time in ms, far below bigint


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    items: list[Item]
    next_cursor: str | None


def encode_cursor(parts: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).rstrip(b"=").decode()


def not_a_cursor() -> InvalidPayload:
    return InvalidPayload("cursor: not a cursor of this list", details={"field": "cursor"})


def decode_cursor(cursor: str, arity: int) -> list[str]:
    """The ``arity`` strings a cursor holds, or ``invalid_payload``."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise not_a_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise not_a_cursor() from None
    if (
        not isinstance(parts, list)
        or len(parts) != arity
        or not all(isinstance(p, str) for p in parts)
    ):
        raise not_a_cursor()
    return parts


def read_part(part: str, parse: Callable[[str], Part]) -> Part:
    """One decoded part as the list's position needs it (``cursor_int``, ``cursor_uuid``,
    ``datetime.date.fromisoformat``): a part that does not parse, say from a forged cursor,
    is ``invalid_payload`` too, and never reaches a query."""
    try:
        return parse(part)
    except ValueError:
        raise not_a_cursor() from None


def cursor_int(part: str) -> int:
    """A sequence number or a time in ms: bounded, so a forged one cannot overflow a bigint."""
    value = int(part)
    if not 0 <= value <= MAX_CURSOR_INT:
        raise ValueError(f"{value} is out of range")
    return value


def cursor_uuid(part: str) -> str:
    return str(uuid.UUID(part))


def page_of(rows: list[Item], limit: int, position: Callable[[Item], Sequence[str]]) -> Page[Item]:
    """Cut ``limit + 1`` fetched rows to a page; the cursor points after its last item."""
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    return Page(items, encode_cursor(position(items[-1])))
