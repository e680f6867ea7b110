"""The call state machine, as pure functions: ``advance(state, event, actor, now)`` returns the
next state and the notices to send, or raises the ``HubError`` the actor should see.

No I/O here. ``hub/calls.py`` loads a call from Redis, applies one event inside a
WATCH/MULTI transaction and, when another node changed the call first, applies it again to
the fresh state; so these rules alone decide which of two racing accepts wins, and a
transition's notices are sent by exactly one node.

```
            invite (callee in an answered call) ──▶ ended: busy
  invite ──▶ RINGING ── accept ───────────────────▶ ACTIVE ── last hangup / left / ──▶ ended:
               │  ├── decline (1:1; band: all) ─▶ ended: declined      room_finished    answered
               │  ├── cancel / caller hangup ───▶ ended: cancelled
               │  └── deadline ─────────────────▶ ended: missed
  (band: ACTIVE keeps ringing the others until they accept, decline or the ring deadline)
```
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast, get_args

from hub.errors import Conflict, Forbidden, HubError, NotFound

Phase = Literal["ringing", "active", "ended"]
Outcome = Literal["answered", "declined", "missed", "cancelled", "busy"]
CallEvent = Literal[
    "accept", "decline", "cancel", "hangup", "timeout", "joined", "left", "room_finished"
]
USER_EVENTS: frozenset[CallEvent] = frozenset({"accept", "decline", "cancel", "hangup"})
# Reports from LiveKit and the sweep: never refused, at worst they change nothing.
REPORTED_EVENTS: frozenset[CallEvent] = frozenset({"timeout", "joined", "left", "room_finished"})
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


@dataclass(frozen=True, slots=True)
class Notice:
    """One event for every device of ``users``; ``skip_actor_device`` leaves out the
    connection that caused it (it has its ack)."""

    event: str
    users: tuple[str, ...]
    payload: Mapping[str, Any]
    skip_actor_device: bool = False


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

    def incoming_payload(self) -> dict[str, Any]:
        call: dict[str, Any] = {
            "id": self.id,
            "from": self.caller,
            "instance": self.instance,
            "media": self.media,
            "expiresAt": self.ring_deadline,
        }
        if self.band is not None:
            call["band"] = self.band
        return {"call": call}

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


@dataclass(frozen=True, slots=True)
class Transition:
    state: CallState
    notices: tuple[Notice, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state.phase == "ended"


def _users(users: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(users)))


def new_call(
    *,
    call_id: str,
    caller: str,
    callees: Iterable[str],
    band: str | None,
    instance: str,
    media: str,
    room: str,
    now: int,
    ring_ms: int,
    max_ms: int,
    busy: frozenset[str],
) -> Transition:
    """An invite: rings the callees, or ends at once as ``busy`` when the callee (every
    member, for a band) is already in an answered call. Busy band members are left out."""
    everyone = _users(callees)
    free = tuple(c for c in everyone if c not in busy)
    state = CallState(
        id=call_id,
        caller=caller,
        callees=free or everyone,
        band=band,
        instance=instance,
        media=media,
        room=room,
        phase="ringing",
        started_at=now,
        ring_deadline=now + ring_ms,
        max_ms=max_ms,
        joined=frozenset({caller}),
    )
    if not free:
        ended = replace(state, phase="ended", outcome="busy", ended_at=now, joined=frozenset())
        return Transition(ended, (Notice("call:busy", (caller,), {"call": call_id}),))
    return Transition(state, (Notice("call:incoming", free, state.incoming_payload()),))


def advance(state: CallState, event: CallEvent, actor: str | None, now: int) -> Transition:
    """Apply one event. User events (``accept``, ``decline``, ``cancel``, ``hangup``) raise
    when refused; reported ones (``timeout`` from the sweep, ``joined``/``left``/
    ``room_finished`` from LiveKit) never raise and may change nothing."""
    if event in REPORTED_EVENTS:
        try:
            return _reported(state, event, actor, now)
        except HubError:
            return Transition(state)
    if state.phase == "ended":
        raise NotFound("the call has ended")
    if actor is None or actor not in state.participants:
        raise Forbidden("you are not part of this call")
    if event == "accept":
        return _accept(state, actor, now)
    if event == "decline":
        return _decline(state, actor, now)
    if event == "cancel":
        return _cancel(state, actor, now)
    if event == "hangup":
        return _hangup(state, actor, now)
    raise ValueError(f"unknown call event {event!r}")


def _reported(state: CallState, event: CallEvent, actor: str | None, now: int) -> Transition:
    if state.phase == "ended":
        return Transition(state)
    if event == "timeout":
        return _timeout(state, now)
    if event == "room_finished":
        return _room_finished(state, now)
    if actor is None or actor not in state.participants:
        return Transition(state)
    if event == "joined":
        if actor in state.joined:
            return Transition(state)
        if actor == state.caller:
            return Transition(replace(state, joined=state.joined | {actor}))
        # A callee who joined the room with a REST token answered the call.
        return _accept(state, actor, now)
    if event == "left" and state.phase == "active" and actor in state.joined:
        return _leave(state, actor, now)
    # The caller's LiveKit link dropping while it rings is not a cancel: the deadline ends it.
    return Transition(state)


def _accept(state: CallState, actor: str, now: int) -> Transition:
    if actor == state.caller:
        raise Forbidden("the caller does not accept their own call")
    if actor in state.joined:
        raise Conflict("this call was already answered")
    if state.phase == "ringing" and now >= state.ring_deadline:
        raise NotFound("the call is no longer ringing")
    if state.phase == "active" and state.band is None:
        raise Conflict("this call was already answered")
    accepted = replace(
        state,
        phase="active",
        answered_at=state.answered_at if state.answered_at is not None else now,
        joined=state.joined | {actor},
        answered=state.answered | {actor},
        declined=state.declined - {actor},
    )
    return Transition(
        accepted,
        (
            Notice("call:accepted", (state.caller,), {"call": state.id, "by": actor}),
            Notice("call:answered_elsewhere", (actor,), {"call": state.id}, True),
        ),
    )


def _decline(state: CallState, actor: str, now: int) -> Transition:
    if actor == state.caller:
        raise Forbidden("the caller cancels or hangs up, and does not decline")
    if actor in state.joined:
        raise Conflict("you are in this call: hang up instead")
    if actor not in state.ringing:
        return Transition(state)  # declined already, or the ringing is over: nothing to do
    declined = replace(state, declined=state.declined | {actor})
    notices = [
        Notice("call:declined", (state.caller,), {"call": state.id, "by": actor}),
        Notice("call:declined", (actor,), {"call": state.id, "by": actor}, True),
    ]
    everyone_declined = declined.declined >= frozenset(state.callees)
    if state.phase == "ringing" and (state.band is None or everyone_declined):
        ended = _ended(declined, "declined", actor, now)
        if state.band is not None:
            notices.append(Notice("call:ended", (state.caller,), _ended_payload(ended)))
        return Transition(ended, tuple(notices))
    return Transition(declined, tuple(notices))


def _cancel(state: CallState, actor: str, now: int) -> Transition:
    if actor != state.caller:
        raise Forbidden("only the caller can cancel a call")
    if state.phase != "ringing":
        raise Conflict("the call was answered: hang up instead")
    ended = _ended(state, "cancelled", actor, now)
    payload = {"call": state.id}
    return Transition(
        ended,
        (
            Notice("call:cancelled", _users(state.ringing), payload),
            Notice("call:cancelled", (state.caller,), payload, True),
        ),
    )


def _hangup(state: CallState, actor: str, now: int) -> Transition:
    if state.phase == "ringing":
        return _cancel(state, actor, now) if actor == state.caller else _decline(state, actor, now)
    if actor in state.ringing:
        return _decline(state, actor, now)
    if actor not in state.joined:
        return Transition(state)  # left already: hanging up twice is harmless
    return _leave(state, actor, now)


def _leave(state: CallState, actor: str, now: int) -> Transition:
    """A 1:1 call ends when either side leaves; a band call when its last participant does."""
    remaining = state.joined - {actor}
    if state.band is not None and remaining:
        left = replace(state, joined=remaining)
        return Transition(
            left, (Notice("call:left", _users(remaining), {"call": state.id, "by": actor}),)
        )
    return _end_answered(state, actor, now)


def _end_answered(state: CallState, by: str | None, now: int) -> Transition:
    involved = {state.caller} | state.answered | state.ringing
    ended = _ended(state, "answered", by, now)
    return Transition(ended, (Notice("call:ended", _users(involved), _ended_payload(ended), True),))


def _timeout(state: CallState, now: int) -> Transition:
    if state.phase == "ringing":
        if now < state.ring_deadline:
            return Transition(state)
        ended = _ended(state, "missed", None, now)
        missed = _users({state.caller} | state.ringing)
        return Transition(ended, (Notice("call:missed", missed, {"call": state.id}),))
    if state.ringing and now >= state.ring_deadline:
        # A band call goes on; those who never answered stop ringing.
        rung_out = replace(state, ring_over=True)
        return Transition(
            rung_out, (Notice("call:missed", _users(state.ringing), {"call": state.id}),)
        )
    deadline = state.next_deadline()
    if deadline is not None and now >= deadline:
        return _end_answered(state, None, now)
    return Transition(state)


def _room_finished(state: CallState, now: int) -> Transition:
    if state.phase == "ringing":
        ended = _ended(state, "cancelled", None, now)
        payload = {"call": state.id}
        return Transition(
            ended, (Notice("call:cancelled", _users({state.caller} | state.ringing), payload),)
        )
    return _end_answered(state, None, now)


def _ended(state: CallState, outcome: Outcome, by: str | None, now: int) -> CallState:
    return replace(
        state, phase="ended", outcome=outcome, ended_at=now, ended_by=by, joined=frozenset()
    )


def _ended_payload(state: CallState) -> dict[str, Any]:
    return {"call": state.id, "by": state.ended_by, "duration": state.duration_ms}
