"""Results to JSON-ready values: dataclass fields in order, nested, as ``report.json`` holds them.

A field marked ``FLAT`` is merged into its parent (the header of every result sits at the top
level of report.json); a class with its own ``to_json()`` (open-keyed rows such as a timeline
second) writes itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol, runtime_checkable

FLAT = {"flat": True}


@runtime_checkable
class SelfEncoding(Protocol):
    def to_json(self) -> dict[str, object]: ...


def to_json(value: object) -> object:
    if isinstance(value, SelfEncoding):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_to_json(value)
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def fields_to_json(value: object) -> dict[str, object]:
    """A dataclass's fields in declaration order, ``FLAT`` ones merged in place."""
    out: dict[str, object] = {}
    for item in dataclasses.fields(value):  # type: ignore[arg-type]
        encoded = to_json(getattr(value, item.name))
        if item.metadata.get("flat") and isinstance(encoded, dict):
            out.update(encoded)
        else:
            out[item.name] = encoded
    return out
