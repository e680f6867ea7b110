"""The call state machine, as pure functions: ``advance(state, event, actor, now)`` returns the
next state and the notices to send, or raises the ``HubError`` the actor should see.

No I/O here. ``hub/calls/service.py`` loads a call through its live-call port, applies one
event inside a transaction and, when another node changed the call first, applies it again
to the fresh state; so these rules alone decide which of two racing accepts wins, and a
transition's notices are sent by exactly one node. The record is ``hub/calls/state.py``;
every notice's payload is built by its function in ``hub/calls/views.py``.

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from hub.calls import views
from hub.calls.state import CallState, Outcome
from hub.calls.views import PushedCallEvent
from hub.errors import Conflict, Forbidden, HubError, NotFound

CallEvent = Literal[
    "accept", "decline", "cancel", "hangup", "timeout", "joined", "left", "room_finished"
]
USER_EVENTS: frozenset[CallEvent] = frozenset({"accept", "decline", "cancel", "hangup"})
# Reports from LiveKit and the sweep: never refused, at worst they change nothing.
REPORTED_EVENTS: frozenset[CallEvent] = frozenset({"timeout", "joined", "left", "room_finished"})


@dataclass(frozen=True, slots=True)
class Notice:
    """One event for every device of ``users``; ``skip_actor_device`` leaves out the
    connection that caused it (it has its ack)."""

    event: PushedCallEvent
    users: tuple[str, ...]
    payload: Mapping[str, Any]
    skip_actor_device: bool = False


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
        return Transition(ended, (Notice("call:busy", (caller,), views.busy_event(call_id)),))
    return Transition(state, (Notice("call:incoming", free, views.incoming_event(state)),))


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
            Notice("call:accepted", (state.caller,), views.accepted_event(state.id, actor)),
            Notice(
                "call:answered_elsewhere", (actor,), views.answered_elsewhere_event(state.id), True
            ),
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
    payload = views.declined_event(state.id, actor)
    notices = [
        Notice("call:declined", (state.caller,), payload),
        Notice("call:declined", (actor,), payload, True),
    ]
    everyone_declined = declined.declined >= frozenset(state.callees)
    if state.phase == "ringing" and (state.band is None or everyone_declined):
        ended = _ended(declined, "declined", actor, now)
        if state.band is not None:
            notices.append(Notice("call:ended", (state.caller,), views.ended_event(ended)))
        return Transition(ended, tuple(notices))
    return Transition(declined, tuple(notices))


def _cancel(state: CallState, actor: str, now: int) -> Transition:
    if actor != state.caller:
        raise Forbidden("only the caller can cancel a call")
    if state.phase != "ringing":
        raise Conflict("the call was answered: hang up instead")
    ended = _ended(state, "cancelled", actor, now)
    payload = views.cancelled_event(state.id)
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
            left, (Notice("call:left", _users(remaining), views.left_event(state.id, actor)),)
        )
    return _end_answered(state, actor, now)


def _end_answered(state: CallState, by: str | None, now: int) -> Transition:
    involved = {state.caller} | state.answered | state.ringing
    ended = _ended(state, "answered", by, now)
    return Transition(
        ended, (Notice("call:ended", _users(involved), views.ended_event(ended), True),)
    )


def _timeout(state: CallState, now: int) -> Transition:
    if state.phase == "ringing":
        if now < state.ring_deadline:
            return Transition(state)
        ended = _ended(state, "missed", None, now)
        missed = _users({state.caller} | state.ringing)
        return Transition(ended, (Notice("call:missed", missed, views.missed_event(state.id)),))
    if state.ringing and now >= state.ring_deadline:
        # A band call goes on; those who never answered stop ringing.
        rung_out = replace(state, ring_over=True)
        return Transition(
            rung_out, (Notice("call:missed", _users(state.ringing), views.missed_event(state.id)),)
        )
    deadline = state.next_deadline()
    if deadline is not None and now >= deadline:
        return _end_answered(state, None, now)
    return Transition(state)


def _room_finished(state: CallState, now: int) -> Transition:
    if state.phase == "ringing":
        ended = _ended(state, "cancelled", None, now)
        payload = views.cancelled_event(state.id)
        return Transition(
            ended, (Notice("call:cancelled", _users({state.caller} | state.ringing), payload),)
        )
    return _end_answered(state, None, now)


def _ended(state: CallState, outcome: Outcome, by: str | None, now: int) -> CallState:
    return replace(
        state, phase="ended", outcome=outcome, ended_at=now, ended_by=by, joined=frozenset()
    )
