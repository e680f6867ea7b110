"""Calls: ring, answer, decline, cancel, time out and hang up, across every hub node.

The rules are the pure ``hub.calls.rules.advance``; this service loads a call through its
``LiveCalls`` port (Redis: a WATCH/MULTI transaction, so two devices accepting at once on
two nodes cannot both win), applies one event, then records a finished call in the history
and only then sends the transition's notices. Every node sweeps the ring deadlines; the
port hands each due call to one node, and the transaction makes its ``call:missed`` go out
once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from hub.calls.livekit import LiveKitInstances, RoomGrant, band_room, call_room, parse_room
from hub.calls.ports import CallHistory, CallPushes, LiveCalls, Memberships, UserNames
from hub.calls.rules import USER_EVENTS, CallEvent, Transition, advance, new_call
from hub.calls.state import CallState
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, HubError, InvalidPayload, NotFound
from hub.fanout import Delivery, Fanout
from hub.protocol.cursors import Page, decode_cursor, page_of
from storage.redis.calls import CallWrite
from storage.sql.calls import FinishedCall

log = logging.getLogger(__name__)
# The one refusal for a stranger, someone who declined, and a block, alike.
NOT_A_CONTACT = "calls are only between contacts"
NOT_YOURS = "you may join only calls you are part of"
GONE = "no such call, or it has ended"

# A call's keys outlive its next deadline by this much, so a sweep (or a lease that ran out
# on a node that died) always finds the call before Redis forgets it.
KEY_MARGIN_MS = 10 * 60 * 1000
CLAIM_LEASE_MS = 10_000
SWEEP_INTERVAL_SECONDS = 0.5
LIVEKIT_EVENTS: dict[str, CallEvent] = {
    "participant_joined": "joined",
    "participant_left": "left",
    "room_finished": "room_finished",
}
# Before every call: the position the first page of the history starts from.
FIRST_PAGE = (2**62, "ffffffff-ffff-ffff-ffff-ffffffffffff")


@dataclass(frozen=True, slots=True)
class CallParty:
    """Who acts: the user, and the connection to leave out of echoes (None for LiveKit)."""

    user_id: str
    conn_id: str | None


@dataclass(frozen=True, slots=True)
class Invitation:
    call: CallState
    url: str  # where the instance's LiveKit server is
    grant: RoomGrant | None  # None when the call ended at once as busy


def history_position(call: FinishedCall) -> tuple[str, str]:
    """Where the next page of the history starts: after this call (start time, then id)."""
    return str(call.started_at), call.id


def parse_history_cursor(cursor: str | None) -> tuple[int, str]:
    """The (start time, id) a history cursor holds, or ``invalid_payload``."""
    if not cursor:
        return FIRST_PAGE
    started_at, call_id = decode_cursor(cursor, 2)
    try:
        position = int(started_at), str(uuid.UUID(call_id))
    except ValueError:
        position = None
    # Beyond a bigint it was never ours, and PostgreSQL would refuse it as a parameter.
    if position is None or not 0 <= position[0] <= FIRST_PAGE[0]:
        raise InvalidPayload("cursor: not a cursor of this list", details={"field": "cursor"})
    return position


class CallService:
    def __init__(
        self,
        *,
        calls: LiveCalls,
        history: CallHistory,
        memberships: Memberships,
        users: UserNames,
        livekit: LiveKitInstances,
        fanout: Fanout,
        clock: Clock,
        ring_seconds: int,
        max_seconds: int,
        pushes: CallPushes,
    ) -> None:
        self._pushes = pushes
        self._calls = calls
        self._history = history
        self._memberships = memberships
        self._users = users
        self._livekit = livekit
        self._fanout = fanout
        self._clock = clock
        self._ring_ms = ring_seconds * 1000
        self._max_ms = max_seconds * 1000

    async def invite(
        self, caller: CallParty, *, to: str | None, band: str | None, instance: str, media: str
    ) -> Invitation:
        """Ring the callee's devices (every other member's, for a band). Only people who share
        a band or a conversation may call each other."""
        url = self._livekit.instance(instance).url
        callees = await self._callees(caller.user_id, to, band)
        busy = await self._busy_among(callees)
        call_id = str(uuid.uuid4())
        transition = new_call(
            call_id=call_id,
            caller=caller.user_id,
            callees=callees,
            band=band,
            instance=instance,
            media=media,
            room=call_room(call_id),
            now=self._clock(),
            ring_ms=self._ring_ms,
            max_ms=self._max_ms,
            busy=busy,
        )
        state = transition.state
        grant = None
        if transition.finished:
            await self._record(state)
        else:
            await self._calls.create(call_id, self._write(None, state))
            grant = await self._grant(state, caller.user_id)
        await self._send(transition, caller)
        return Invitation(state, url, grant)

    async def accept(self, actor: CallParty, call_id: str) -> RoomGrant:
        """First accept wins; the acceptor's other devices stop ringing. A band call is
        answered only by someone who is still a member (leaving is leaving)."""
        live = await self.live_call(call_id)
        if live is not None and live.band is not None:
            await self._still_member(live.band, actor.user_id, NotFound, GONE)
        state = await self._apply(call_id, "accept", actor)
        assert state is not None
        return await self._grant(state, actor.user_id)

    async def decline(self, actor: CallParty, call_id: str) -> None:
        await self._apply(call_id, "decline", actor)

    async def cancel(self, actor: CallParty, call_id: str) -> None:
        await self._apply(call_id, "cancel", actor)

    async def hangup(self, actor: CallParty, call_id: str) -> None:
        await self._apply(call_id, "hangup", actor)

    async def on_livekit_event(
        self, instance: str, event_name: str, room: str, identity: str
    ) -> bool:
        """A verified webhook: someone joined or left a call's room, or the room closed.
        True when it concerned a live call of that instance."""
        event = LIVEKIT_EVENTS.get(event_name)
        parsed = parse_room(room)
        if event is None or parsed is None or parsed[0] != "call":
            return False
        state = await self._apply(
            parsed[1], event, CallParty(identity, None) if identity else None, instance=instance
        )
        return state is not None

    async def live_call(self, call_id: str) -> CallState | None:
        fields = await self._calls.load(call_id)
        return CallState.from_fields(fields) if fields else None

    async def history(self, user_id: str, cursor: str | None, limit: int) -> Page[FinishedCall]:
        """The user's finished calls, newest first, a page at a time."""
        before_at, before_id = parse_history_cursor(cursor)
        calls = await self._history.calls_of(
            user_id, before_started_at=before_at, before_id=before_id, limit=limit + 1
        )
        return page_of(calls, limit, history_position)

    async def sweep_once(self) -> None:
        """Time out this node's share of the due calls (each is claimed by one node)."""
        now = self._clock()
        for call_id in await self._calls.claim_due(now_ms=now, lease_ms=CLAIM_LEASE_MS):
            try:
                if await self._apply(call_id, "timeout", None) is None:
                    await self._calls.forget_deadline(call_id)
            except Exception:
                log.warning("call %s: timeout failed; its lease will lapse", call_id, exc_info=True)

    async def run_sweeps(self) -> None:
        """Until cancelled: sweep twice a second, surviving Redis outages."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                await self.sweep_once()
            except Exception:
                log.warning("call sweep failed; will retry", exc_info=True)

    async def _callees(self, caller: str, to: str | None, band: str | None) -> list[str]:
        if to is not None:
            if to == caller:
                raise InvalidPayload("to: call someone else")
            if to not in await self._memberships.visible_among(caller, [to]):
                raise Forbidden(NOT_A_CONTACT)
            return [to]
        assert band is not None
        members = await self._memberships.band_member_ids(band)
        if caller not in members:
            # As on every band route: a non-member cannot tell a band from a missing one.
            raise NotFound("no such band")
        others = sorted(members - {caller})
        if not others:
            raise Conflict("nobody else is in this band")
        return others

    async def _busy_among(self, users: list[str]) -> frozenset[str]:
        """Who is in an answered call that has not ended (a stale link does not count)."""
        busy = set()
        for user, call_id in (await self._calls.active_calls_of(users)).items():
            state = await self.live_call(call_id)
            if state is not None and user in state.in_answered_call:
                busy.add(user)
        return frozenset(busy)

    async def _apply(
        self,
        call_id: str,
        event: CallEvent,
        actor: CallParty | None,
        *,
        instance: str | None = None,
    ) -> CallState | None:
        """One event on one call, atomically; None when the call is gone and the event is a
        report (a user's event on a gone call is ``not_found``)."""
        now = self._clock()
        actor_id = actor.user_id if actor else None

        def decide(fields: dict[str, str] | None) -> tuple[CallWrite | None, Transition | None]:
            if fields is None:
                if event in USER_EVENTS:
                    raise NotFound(GONE)
                return None, None
            before = CallState.from_fields(fields)
            if instance is not None and before.instance != instance:
                return None, Transition(before)  # a webhook from another instance's room
            transition = advance(before, event, actor_id, now)
            changed = transition.state != before
            if not changed and event != "timeout":
                return None, transition
            # A timeout always writes: the claim moved the deadline, this puts it back.
            return self._write(before, transition.state), transition

        transition = await self._calls.update(call_id, decide)
        if transition is None:
            return None
        if transition.finished:
            await self._record(transition.state)
        await self._send(transition, actor)
        return transition.state

    def _write(self, before: CallState | None, after: CallState) -> CallWrite:
        was_in = before.in_answered_call if before else frozenset()
        now_in = after.in_answered_call
        deadline = after.next_deadline()
        ttl_ms = (deadline - self._clock() if deadline else 0) + KEY_MARGIN_MS
        return CallWrite(
            fields=None if after.phase == "ended" else after.to_fields(),
            deadline=deadline,
            ttl_ms=max(ttl_ms, KEY_MARGIN_MS),
            link_users=sorted(now_in - was_in),
            unlink_users=sorted(was_in - now_in),
        )

    async def _record(self, state: CallState) -> None:
        """Write the finished call to history. Redis already says it ended, so a failure here
        is logged, not undone: the call must not ring on."""
        record = FinishedCall(
            id=state.id,
            caller_id=state.caller,
            callee_id=state.callees[0] if state.band is None else None,
            band_id=state.band,
            instance=state.instance,
            media=state.media,
            started_at=state.started_at,
            answered_at=state.answered_at,
            ended_at=state.ended_at if state.ended_at is not None else self._clock(),
            outcome=state.outcome or "missed",
        )
        try:
            await self._history.record(record, sorted(state.participants))
        except Exception:
            log.warning("call %s: history not written", state.id, exc_info=True)

    async def _send(self, transition: Transition, actor: CallParty | None) -> None:
        deliveries = []
        for notice in transition.notices:
            for user in notice.users:
                skip = (
                    actor.conn_id
                    if notice.skip_actor_device and actor is not None and user == actor.user_id
                    else None
                )
                deliveries.append(Delivery(user, notice.event, dict(notice.payload), skip))
        await self._fanout.deliver(deliveries)
        try:
            await self._pushes.call_notices(transition.state, transition.notices)
        except Exception:  # the call goes on; a phone in a pocket just does not ring
            log.warning("call %s: pushes not queued", transition.state.id, exc_info=True)

    async def _grant(self, state: CallState, user_id: str) -> RoomGrant:
        user = await self._users.get(user_id)
        return self._livekit.mint(
            state.instance,
            state.room,
            identity=user_id,
            name=user.name if user else user_id,
            media=state.media,
            now_ms=self._clock(),
        )

    async def ensure_can_join(self, user_id: str, instance: str, call_id: str) -> CallState:
        """The live call, if the user is one of its participants on that instance."""
        state = await self.live_call(call_id)
        if state is None or user_id not in state.participants or state.instance != instance:
            raise Forbidden(NOT_YOURS)
        if state.band is not None:
            await self._still_member(state.band, user_id, Forbidden, NOT_YOURS)
        return state

    async def _still_member(
        self, band_id: str, user_id: str, refusal: type[HubError], message: str
    ) -> None:
        if user_id not in await self._memberships.band_member_ids(band_id):
            raise refusal(message)

    async def end_calls_between(self, a: str, b: str) -> None:
        """After a block: a 1:1 call between the two ends as if its caller ended it (a
        ringing one is cancelled, an answered one hung up), with the usual notices."""
        for state in await self._live_calls():
            if state.band is None and state.participants == {a, b}:
                event: CallEvent = "cancel" if state.phase == "ringing" else "hangup"
                await self._end_quietly(state.id, event, state.caller)

    async def drop_from_band_calls(self, band_id: str, user_id: str) -> None:
        """After ``user_id`` left ``band_id`` (or was removed): they leave its live calls (a
        hangup: ringing stops, the others go on) and LiveKit throws them out of the room."""
        for state in await self._live_calls():
            if state.band == band_id and user_id in state.participants:
                await self._end_quietly(state.id, "hangup", user_id)
                await self._livekit.remove_participant(state.instance, state.room, user_id)
        for instance in self._livekit.configured():
            await self._livekit.remove_participant(instance, band_room(band_id), user_id)

    async def _live_calls(self) -> list[CallState]:
        calls = []
        for call_id in await self._calls.live_call_ids():
            state = await self.live_call(call_id)
            if state is not None:
                calls.append(state)
        return calls

    async def _end_quietly(self, call_id: str, event: CallEvent, user_id: str) -> None:
        try:
            await self._apply(call_id, event, CallParty(user_id, None))
        except (NotFound, Conflict, Forbidden):
            pass  # it ended meanwhile, or the event no longer applies
