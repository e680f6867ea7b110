"""Every shape the calls capability sends: the ``call:*`` pushes, the ``call:invite`` and
``call:accept`` acks, the call history and the LiveKit answers.

Each shape is one model, built by one function below that goes through the model's own
constructor, so a wrong field fails where it is made, not on a phone. Calls are not the hot
path (a handful of events per call), so the validation costs nothing that matters. The test
phones check every push against ``PUSHED_EVENTS``, and the call tests check the acks and the
REST answers against these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from hub.calls.livekit import OpenedRoom, RoomGrant
from hub.calls.state import CallState, Outcome
from hub.protocol.cursors import Page
from hub.protocol.fields import CallMedia, LiveKitInstanceName
from hub.protocol.models import View, pushed
from storage.sql.calls import FinishedCall

# The names of the pushes the call machine sends (``hub/calls/rules.py``), one model each.
PushedCallEvent = Literal[
    "call:incoming",
    "call:accepted",
    "call:answered_elsewhere",
    "call:declined",
    "call:cancelled",
    "call:missed",
    "call:busy",
    "call:left",
    "call:ended",
]


# -- Pushed events ------------------------------------------------------------------------


class IncomingCall(View):
    """The call as a ringing device needs it: who calls, on which instance, until when."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from", description="the caller")
    instance: LiveKitInstanceName
    media: CallMedia
    band: str | None = Field(default=None, description="the band, for a band call; else absent")
    expiresAt: int = Field(description="the ring deadline, ms since the epoch")


@pushed("call:incoming")
class CallIncomingEvent(View):
    """Every device of the callee; for a band call, of every other member not busy."""

    call: IncomingCall


class CallNotice(View):
    """A push about one call, named by its id (every call push but ``call:incoming``)."""

    call: str = Field(description="the call's id")


class CallNoticeBy(CallNotice):
    by: str = Field(description="the user who acted")


@pushed("call:accepted")
class CallAcceptedEvent(CallNoticeBy):
    """The caller's devices, once per acceptor."""


@pushed("call:answered_elsewhere")
class CallAnsweredElsewhereEvent(CallNotice):
    """The acceptor's other devices: stop ringing."""


@pushed("call:declined")
class CallDeclinedEvent(CallNoticeBy):
    """The caller's devices, and the decliner's other devices (stop ringing)."""


@pushed("call:cancelled")
class CallCancelledEvent(CallNotice):
    """Every device still ringing, and the caller's other devices."""


@pushed("call:missed")
class CallMissedEvent(CallNotice):
    """Nobody answered by the ring deadline: the caller and every ringing callee, once. In an
    answered band call, only the members still ringing at the deadline."""


@pushed("call:busy")
class CallBusyEvent(CallNotice):
    """The caller's devices: the callee (every member, for a band) is in an answered call."""


@pushed("call:left")
class CallLeftEvent(CallNoticeBy):
    """A band call goes on without ``by``: the remaining participants."""


@pushed("call:ended")
class CallEndedEvent(CallNotice):
    """The call is over: the caller, everyone who answered, anyone still ringing."""

    by: str | None = Field(
        description="who hung up; null when LiveKit closed the room or the call hit its limit"
    )
    duration: int = Field(description="ms from the first answer; 0 for a call never answered")


def incoming_event(call: CallState) -> dict[str, Any]:
    band = {"band": call.band} if call.band is not None else {}
    incoming = IncomingCall(
        id=call.id,
        from_=call.caller,
        instance=call.instance,
        media=call.media,
        expiresAt=call.ring_deadline,
        **band,
    )
    return CallIncomingEvent(call=incoming).model_dump(by_alias=True, exclude_unset=True)


def accepted_event(call_id: str, by: str) -> dict[str, Any]:
    return CallAcceptedEvent(call=call_id, by=by).model_dump()


def answered_elsewhere_event(call_id: str) -> dict[str, Any]:
    return CallAnsweredElsewhereEvent(call=call_id).model_dump()


def declined_event(call_id: str, by: str) -> dict[str, Any]:
    return CallDeclinedEvent(call=call_id, by=by).model_dump()


def cancelled_event(call_id: str) -> dict[str, Any]:
    return CallCancelledEvent(call=call_id).model_dump()


def missed_event(call_id: str) -> dict[str, Any]:
    return CallMissedEvent(call=call_id).model_dump()


def busy_event(call_id: str) -> dict[str, Any]:
    return CallBusyEvent(call=call_id).model_dump()


def left_event(call_id: str, by: str) -> dict[str, Any]:
    return CallLeftEvent(call=call_id, by=by).model_dump()


def ended_event(call: CallState) -> dict[str, Any]:
    return CallEndedEvent(call=call.id, by=call.ended_by, duration=call.duration_ms).model_dump()


# -- Socket acks --------------------------------------------------------------------------


class InvitedCall(View):
    """The call as its caller needs it: where to join, with the caller's own token."""

    id: str
    room: str
    instance: LiveKitInstanceName
    url: str = Field(description="the instance's LiveKit server")
    token: str | None = Field(description="the caller's own LiveKit token; null when busy")
    expiresAt: int = Field(description="the ring deadline, ms since the epoch")
    status: Literal["ringing", "busy"]


class CallInviteAck(View):
    ok: Literal[True]
    call: InvitedCall


class CallAcceptAck(View):
    """The acceptor's own way into the call's room."""

    ok: Literal[True]
    url: str
    room: str
    token: str


def invite_ack(call: CallState, url: str, grant: RoomGrant | None) -> dict[str, Any]:
    """``grant`` is None when the call ended at once as busy: nobody rings, nothing to join."""
    invited = InvitedCall(
        id=call.id,
        room=call.room,
        instance=call.instance,
        url=url,
        token=grant.token if grant is not None else None,
        expiresAt=call.ring_deadline,
        status="busy" if call.outcome == "busy" else "ringing",
    )
    return CallInviteAck(ok=True, call=invited).model_dump()


def accept_ack(grant: RoomGrant) -> dict[str, Any]:
    return CallAcceptAck(ok=True, url=grant.url, room=grant.room, token=grant.token).model_dump()


# -- REST answers -------------------------------------------------------------------------


class CallHistoryItem(View):
    """One finished call: ``to`` for a call between two people, ``band`` for a band's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    from_: str = Field(alias="from", description="the caller")
    to: str | None = None
    band: str | None = None
    instance: LiveKitInstanceName
    media: CallMedia
    startedAt: int = Field(description="ms since the epoch")
    answeredAt: int | None
    endedAt: int
    outcome: Outcome
    duration: int = Field(description="ms from answer to end; 0 for a call never answered")


class CallHistoryPage(View):
    items: list[CallHistoryItem]
    nextCursor: str | None = Field(
        description="opaque: pass it back as cursor for older calls; null when there are none"
    )


def history_item(call: FinishedCall) -> CallHistoryItem:
    # Exactly one of ``to`` and ``band`` is given, so the other stays out of the JSON.
    party = {"band": call.band_id} if call.band_id is not None else {"to": call.callee_id}
    return CallHistoryItem(
        id=call.id,
        from_=call.caller_id,
        instance=call.instance,
        media=call.media,
        startedAt=call.started_at,
        answeredAt=call.answered_at,
        endedAt=call.ended_at,
        outcome=call.outcome,
        duration=call.ended_at - call.answered_at if call.answered_at is not None else 0,
        **party,
    )


def history_answer(page: Page[FinishedCall]) -> dict[str, Any]:
    answer = CallHistoryPage(
        items=[history_item(call) for call in page.items], nextCursor=page.next_cursor
    )
    return answer.model_dump(by_alias=True, exclude_unset=True)


class RoomTokenView(View):
    token: str = Field(description="a LiveKit access token for the caller alone")
    url: str = Field(description="the instance's LiveKit server")
    room: str
    expiresAt: int = Field(description="token expiry, ms since the epoch")


class OpenedRoomView(View):
    instance: LiveKitInstanceName
    room: str
    url: str
    sid: str = Field(description="LiveKit's id of the room")


class LiveKitWebhookAck(View):
    ok: Literal[True]
    handled: bool = Field(description="the event concerned a live call of that instance")


def room_token_answer(grant: RoomGrant) -> dict[str, Any]:
    view = RoomTokenView(
        token=grant.token, url=grant.url, room=grant.room, expiresAt=grant.expires_at
    )
    return view.model_dump()


def opened_room_answer(opened: OpenedRoom) -> dict[str, Any]:
    view = OpenedRoomView(
        instance=opened.instance, room=opened.room, url=opened.url, sid=opened.sid
    )
    return view.model_dump()


def webhook_answer(handled: bool) -> dict[str, Any]:
    return LiveKitWebhookAck(ok=True, handled=handled).model_dump()
