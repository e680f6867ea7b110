"""Environment variables declared once: name, default, bounds and meaning, beside the field
that holds the value.

Each settings section is a frozen dataclass whose fields are declared with ``setting(...)``;
``read_section`` reads them all the same way, and ``variable_rows`` lists them for the
README's table, so a default or a variable cannot be written in one place and forgotten in
another (``tests/test_settings.py`` holds the README to the declarations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

ENV = "env"
Section = TypeVar("Section")


class SettingsError(ValueError):
    """An environment variable holds a value the hub cannot use."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One variable: ``shown`` is the default as the README states it, when the value itself
    would mislead (``random``, ``embedded``, ``generated``)."""

    name: str
    doc: str
    shown: str | None = None
    minimum: float | None = None
    parse: Callable[[str, str], Any] | None = None


def setting(
    name: str,
    default: Any,
    doc: str,
    *,
    shown: str | None = None,
    minimum: float | None = None,
    parse: Callable[[str, str], Any] | None = None,
) -> Any:
    """A dataclass field read from ``name``; ``parse(name, raw)`` when the default's type
    does not say how (None defaults, composite values)."""
    return field(default=default, metadata={ENV: EnvVar(name, doc, shown, minimum, parse)})


def parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


def parse_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def parse_flag(name: str, raw: str) -> bool:
    return raw.strip().lower() not in ("0", "false", "no", "off")


def parse_list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_text(name: str, raw: str) -> str:
    return raw


def parse_rate_limit(name: str, raw: str) -> tuple[int, int] | None:
    """``<count>/<seconds>`` as (count, seconds), or None for ``off`` (load tests)."""
    raw = raw.strip()
    if raw.lower() == "off":
        return None
    count, sep, seconds = raw.partition("/")
    try:
        limit = (int(count), int(seconds))
    except ValueError:
        limit = (0, 0)
    if not sep or min(limit) < 1:
        raise SettingsError(f"{name} must be <count>/<seconds> (e.g. 100/900) or off, got {raw!r}")
    return limit


def parse_url(name: str, raw: str) -> str:
    return raw.rstrip("/")


def parse_optional(name: str, raw: str) -> str | None:
    return raw or None


def _parser_for(default: Any) -> Callable[[str, str], Any]:
    if isinstance(default, bool):
        return parse_flag
    if isinstance(default, int):
        return parse_int
    if isinstance(default, float):
        return parse_float
    if isinstance(default, tuple):
        return parse_list
    if isinstance(default, Path):
        return lambda _name, raw: Path(raw)
    return parse_text


def read_section(cls: type[Section], env: Mapping[str, str]) -> Section:
    """Every declared field of ``cls`` from ``env``; unset or empty keeps the default."""
    values: dict[str, Any] = {}
    for spec in fields(cls):  # type: ignore[arg-type]
        var: EnvVar | None = spec.metadata.get(ENV)
        if var is None:
            continue
        raw = env.get(var.name)
        if raw is None or raw == "":
            continue
        parse = var.parse or _parser_for(spec.default)
        value = parse(var.name, raw)
        if var.minimum is not None and isinstance(value, int | float) and value < var.minimum:
            shown = int(var.minimum) if float(var.minimum).is_integer() else var.minimum
            raise SettingsError(f"{var.name} must be at least {shown}, got {value}")
        values[spec.name] = value
    return cls(**values)


def shown_default(var: EnvVar, default: Any) -> str:
    if var.shown is not None:
        return var.shown
    if isinstance(default, bool):
        return "`1`" if default else "`0`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    if isinstance(default, Path):
        return f"`./{default}`"
    return f"`{default}`"


def variable_rows(cls: type[Any]) -> Iterator[tuple[str, str, str]]:
    """(variable, default as shown, meaning) for every variable a section reads."""
    for spec in fields(cls):
        var: EnvVar | None = spec.metadata.get(ENV)
        if var is not None:
            yield f"`{var.name}`", shown_default(var, spec.default), var.doc
    yield from getattr(cls, "MORE_VARIABLES", ())
