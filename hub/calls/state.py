"""A call as Redis holds it: the ``CallState`` record, what it says about who rings and who is
busy, and its round trip through a Redis hash.

The transitions are in ``hub/calls/rules.py``; this module only describes one moment of a
call, so the record and its encoding can be read (and tested) without the machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

Phase = Literal["ringing", "active", "ended"]
# How a finished call ended: the ``outcome`` of the call history and of the database row.
Outcome = Literal["answered", "declined", "missed", "cancelled", "busy"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


@dataclass(frozen=True, slots=True)
class CallState:
    """A call as Redis holds it. ``joined`` is who is in the call now (the caller from the
    invite on); ``answered`` every callee who ever accepted; ``declined`` who said no."""

    id: str
    caller: str
    callees: tuple[str, ...]
    band: str | None
    instance: str
    media: str
    room: str
    phase: Phase
    started_at: int
    ring_deadline: int
    max_ms: int
    answered_at: int | None = None
    ended_at: int | None = None
    outcome: Outcome | None = None
    ended_by: str | None = None
    declined: frozenset[str] = field(default_factory=frozenset)
    joined: frozenset[str] = field(default_factory=frozenset)
    answered: frozenset[str] = field(default_factory=frozenset)
    ring_over: bool = False

    @property
    def participants(self) -> frozenset[str]:
        return frozenset((self.caller, *self.callees))

    @property
    def ringing(self) -> frozenset[str]:
        """Callees whose devices are still ringing."""
        if self.phase == "ended" or self.ring_over:
            return frozenset()
        return frozenset(self.callees) - self.declined - self.answered

    @property
    def in_answered_call(self) -> frozenset[str]:
        """Who would make a new call to them ``busy``: everyone in the call once answered."""
        return self.joined if self.phase == "active" else frozenset()

    @property
    def duration_ms(self) -> int:
        if self.answered_at is None:
            return 0
        end = self.ended_at if self.ended_at is not None else self.answered_at
        return max(0, end - self.answered_at)

    def next_deadline(self) -> int | None:
        """When the sweep must look at this call again: the ring deadline while anyone is
        ringing, then the longest a call may last (so a call nobody hangs up ends too)."""
        if self.phase == "ended":
            return None
        if self.ringing:
            return self.ring_deadline
        return (self.answered_at or self.started_at) + self.max_ms

    def to_fields(self) -> dict[str, str]:
        """The Redis hash of this call: strings only, sets as JSON lists."""
        fields = {
            "id": self.id,
            "caller": self.caller,
            "callees": json.dumps(list(self.callees)),
            "instance": self.instance,
            "media": self.media,
            "room": self.room,
            "phase": self.phase,
            "started_at": str(self.started_at),
            "ring_deadline": str(self.ring_deadline),
            "max_ms": str(self.max_ms),
            "declined": json.dumps(sorted(self.declined)),
            "joined": json.dumps(sorted(self.joined)),
            "answered": json.dumps(sorted(self.answered)),
            "ring_over": "1" if self.ring_over else "0",
        }
        optional = {
            "band": self.band,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "ended_by": self.ended_by,
        }
        fields.update({k: str(v) for k, v in optional.items() if v is not None})
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CallState:
        def users(name: str) -> frozenset[str]:
            return frozenset(json.loads(fields.get(name, "[]")))

        def number(name: str) -> int | None:
            raw = fields.get(name)
            return int(raw) if raw else None

        outcome = fields.get("outcome")
        return cls(
            id=fields["id"],
            caller=fields["caller"],
            callees=tuple(json.loads(fields["callees"])),
            band=fields.get("band") or None,
            instance=fields["instance"],
            media=fields["media"],
            room=fields["room"],
            phase=cast(Phase, fields["phase"]),
            started_at=int(fields["started_at"]),
            ring_deadline=int(fields["ring_deadline"]),
            max_ms=int(fields["max_ms"]),
            answered_at=number("answered_at"),
            ended_at=number("ended_at"),
            outcome=next((o for o in OUTCOMES if o == outcome), None),
            ended_by=fields.get("ended_by") or None,
            declined=users("declined"),
            joined=users("joined"),
            answered=users("answered"),
            ring_over=fields.get("ring_over") == "1",
        )
