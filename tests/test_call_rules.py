"""The call state machine as a pure function: every transition, every refusal, no servers;
and the shapes it sends, built by ``hub/calls/views.py``, against their models."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import replace
from typing import get_args

import jwt
import pydantic
import pytest
from livekit.api import TokenVerifier

from hub.calls import views
from hub.calls.livekit import InstanceNotConfigured, LiveKitInstances, parse_room
from hub.calls.rules import Notice, Transition, advance, new_call
from hub.calls.service import FIRST_PAGE, history_position, parse_history_cursor
from hub.calls.state import CallState
from hub.calls.views import PushedCallEvent
from hub.errors import Conflict, Forbidden, InvalidPayload, NotFound
from hub.protocol.cursors import Page, encode_cursor, page_of
from hub.protocol.models import PUSHED_EVENTS
from hub.settings import LiveKitInstanceConfig, Settings, SettingsError
from storage.sql.calls import FinishedCall

CALLER, BOB, CAROL, DAVE, EVE = "caller", "bob", "carol", "dave", "eve"
T0 = 1_000_000
RING_MS = 30_000
MAX_MS = 3_600_000


def ring(*callees: str, band: str | None = None, busy: frozenset[str] = frozenset()) -> Transition:
    return new_call(
        call_id="c1",
        caller=CALLER,
        callees=callees,
        band=band,
        instance="main",
        media="video",
        room="call-c1",
        now=T0,
        ring_ms=RING_MS,
        max_ms=MAX_MS,
        busy=busy,
    )


def sent(transition: Transition) -> list[tuple[str, tuple[str, ...], bool]]:
    return [(n.event, n.users, n.skip_actor_device) for n in transition.notices]


def test_invite_rings_the_callee_until_the_deadline():
    start = ring(BOB)
    assert start.state.phase == "ringing" and start.state.ringing == {BOB}
    assert start.state.joined == {CALLER} and start.state.in_answered_call == frozenset()
    assert start.state.next_deadline() == T0 + RING_MS
    (incoming,) = start.notices
    assert incoming == Notice(
        "call:incoming",
        (BOB,),
        {
            "call": {
                "id": "c1",
                "from": CALLER,
                "instance": "main",
                "media": "video",
                "expiresAt": T0 + RING_MS,
            }
        },
    )


def test_invite_to_someone_in_an_answered_call_ends_at_once_as_busy():
    busy = ring(BOB, busy=frozenset({BOB}))
    assert busy.finished and busy.state.outcome == "busy"
    assert sent(busy) == [("call:busy", (CALLER,), False)]


def test_band_invite_leaves_busy_members_out_and_is_busy_only_when_all_are():
    partly = ring(BOB, CAROL, band="b1", busy=frozenset({BOB}))
    assert not partly.finished and partly.state.callees == (CAROL,)
    assert views.incoming_event(partly.state)["call"]["band"] == "b1"
    everyone = ring(BOB, CAROL, band="b1", busy=frozenset({BOB, CAROL}))
    assert everyone.finished and everyone.state.outcome == "busy"


def test_accept_answers_and_stops_the_acceptors_other_devices():
    accepted = advance(ring(BOB).state, "accept", BOB, T0 + 5)
    state = accepted.state
    assert state.phase == "active" and state.answered_at == T0 + 5
    assert state.joined == {CALLER, BOB} and state.in_answered_call == {CALLER, BOB}
    assert sent(accepted) == [
        ("call:accepted", (CALLER,), False),
        ("call:answered_elsewhere", (BOB,), True),
    ]
    assert state.next_deadline() == T0 + 5 + MAX_MS


def test_second_accept_of_a_direct_call_is_a_conflict():
    state = advance(ring(BOB).state, "accept", BOB, T0 + 5).state
    with pytest.raises(Conflict):
        advance(state, "accept", BOB, T0 + 6)


@pytest.mark.parametrize("event", ["accept", "decline", "cancel", "hangup"])
def test_strangers_cannot_touch_a_call(event):
    with pytest.raises(Forbidden):
        advance(ring(BOB).state, event, EVE, T0 + 1)


def test_only_the_caller_cancels_and_the_caller_does_not_accept():
    state = ring(BOB).state
    with pytest.raises(Forbidden):
        advance(state, "cancel", BOB, T0 + 1)
    with pytest.raises(Forbidden):
        advance(state, "accept", CALLER, T0 + 1)
    with pytest.raises(Forbidden):
        advance(state, "decline", CALLER, T0 + 1)


def test_accept_after_the_ring_deadline_finds_no_ringing_call():
    with pytest.raises(NotFound):
        advance(ring(BOB).state, "accept", BOB, T0 + RING_MS)


def test_every_user_event_on_an_ended_call_is_not_found():
    ended = advance(ring(BOB).state, "cancel", CALLER, T0 + 1).state
    for event in ("accept", "decline", "cancel", "hangup"):
        with pytest.raises(NotFound):
            advance(ended, event, BOB, T0 + 2)  # type: ignore[arg-type]
    assert advance(ended, "timeout", None, T0 + RING_MS).state == ended


def test_decline_ends_a_direct_call_and_tells_the_caller_and_the_other_devices():
    declined = advance(ring(BOB).state, "decline", BOB, T0 + 1)
    assert declined.finished and declined.state.outcome == "declined"
    assert sent(declined) == [
        ("call:declined", (CALLER,), False),
        ("call:declined", (BOB,), True),
    ]
    assert declined.state.next_deadline() is None


def test_cancel_rings_off_every_ringing_device():
    cancelled = advance(ring(BOB, CAROL, band="b1").state, "cancel", CALLER, T0 + 1)
    assert cancelled.finished and cancelled.state.outcome == "cancelled"
    assert sent(cancelled) == [
        ("call:cancelled", (BOB, CAROL), False),
        ("call:cancelled", (CALLER,), True),
    ]


def test_cancel_after_an_answer_is_a_conflict():
    state = advance(ring(BOB).state, "accept", BOB, T0 + 1).state
    with pytest.raises(Conflict):
        advance(state, "cancel", CALLER, T0 + 2)


def test_timeout_is_missed_on_both_sides_once_and_not_before_the_deadline():
    state = ring(BOB).state
    early = advance(state, "timeout", None, T0 + RING_MS - 1)
    assert early.state == state and early.notices == ()
    missed = advance(state, "timeout", None, T0 + RING_MS)
    assert missed.finished and missed.state.outcome == "missed"
    assert sent(missed) == [("call:missed", (BOB, CALLER), False)]
    again = advance(missed.state, "timeout", None, T0 + RING_MS + 1)
    assert again.notices == ()


def test_hangup_ends_a_direct_call_with_its_duration():
    state = advance(ring(BOB).state, "accept", BOB, T0 + 1_000).state
    ended = advance(state, "hangup", CALLER, T0 + 61_000)
    assert ended.finished and ended.state.outcome == "answered"
    assert ended.state.in_answered_call == frozenset()
    (notice,) = ended.notices
    assert notice.event == "call:ended" and notice.users == (BOB, CALLER)
    assert notice.payload == {"call": "c1", "by": CALLER, "duration": 60_000}
    assert notice.skip_actor_device


def test_hangup_while_ringing_is_a_cancel_for_the_caller_and_a_decline_for_the_callee():
    state = ring(BOB).state
    assert advance(state, "hangup", CALLER, T0 + 1).state.outcome == "cancelled"
    assert advance(state, "hangup", BOB, T0 + 1).state.outcome == "declined"


def test_band_call_goes_on_until_its_last_participant_leaves():
    state = ring(BOB, CAROL, DAVE, band="b1").state
    state = advance(state, "accept", BOB, T0 + 1).state
    second = advance(state, "accept", CAROL, T0 + 2)
    state = second.state
    assert state.joined == {CALLER, BOB, CAROL} and state.ringing == {DAVE}
    assert sent(second)[0] == ("call:accepted", (CALLER,), False)
    declined = advance(state, "decline", DAVE, T0 + 3)
    assert not declined.finished and sent(declined)[0] == ("call:declined", (CALLER,), False)
    state = declined.state
    assert state.next_deadline() == T0 + 1 + MAX_MS
    left = advance(state, "hangup", BOB, T0 + 4)
    assert not left.finished
    assert sent(left) == [("call:left", (CALLER, CAROL), False)]
    state = advance(left.state, "hangup", CALLER, T0 + 5).state
    last = advance(state, "hangup", CAROL, T0 + 6)
    assert last.finished and last.state.outcome == "answered"
    assert last.notices[0].payload == {"call": "c1", "by": CAROL, "duration": 5}


def test_band_call_where_everyone_declines_ends_declined():
    state = ring(BOB, CAROL, band="b1").state
    state = advance(state, "decline", BOB, T0 + 1).state
    assert state.phase == "ringing"
    last = advance(state, "decline", CAROL, T0 + 2)
    assert last.finished and last.state.outcome == "declined"
    assert ("call:ended", (CALLER,), False) in sent(last)


def test_answered_band_call_stops_ringing_the_rest_at_the_deadline():
    state = advance(ring(BOB, CAROL, band="b1").state, "accept", BOB, T0 + 1).state
    assert state.next_deadline() == T0 + RING_MS
    rung_out = advance(state, "timeout", None, T0 + RING_MS)
    assert not rung_out.finished and sent(rung_out) == [("call:missed", (CAROL,), False)]
    assert rung_out.state.next_deadline() == T0 + 1 + MAX_MS
    late = advance(rung_out.state, "accept", CAROL, T0 + RING_MS + 5)
    assert CAROL in late.state.joined


def test_a_call_nobody_hangs_up_ends_at_the_longest_duration():
    state = advance(ring(BOB).state, "accept", BOB, T0).state
    assert advance(state, "timeout", None, T0 + MAX_MS - 1).notices == ()
    ended = advance(state, "timeout", None, T0 + MAX_MS)
    assert ended.finished and ended.state.outcome == "answered"
    assert ended.notices[0].payload["by"] is None


def test_livekit_reports_never_raise_and_left_ends_an_answered_call():
    state = ring(BOB).state
    assert advance(state, "left", CALLER, T0 + 1).state == state  # a blip while ringing
    assert advance(state, "joined", EVE, T0 + 1).state == state
    joined = advance(state, "joined", BOB, T0 + 1)  # joined with a REST token: an answer
    assert joined.state.phase == "active"
    left = advance(joined.state, "left", BOB, T0 + 2)
    assert left.finished and left.state.outcome == "answered"
    finished = advance(joined.state, "room_finished", None, T0 + 3)
    assert finished.finished and finished.notices[0].payload["by"] is None


def test_state_survives_its_redis_fields():
    state = advance(ring(BOB, CAROL, band="b1").state, "accept", BOB, T0 + 1).state
    state = advance(state, "decline", CAROL, T0 + 2).state
    assert CallState.from_fields(state.to_fields()) == state
    ended = advance(ring(BOB).state, "cancel", CALLER, T0 + 1).state
    assert CallState.from_fields(ended.to_fields()) == ended


def test_accepts_racing_on_one_call_one_wins_and_the_retry_is_a_conflict():
    # Two devices accept the same ringing state; the store keeps one, and the other's
    # transaction runs its accept again on the state the winner stored.
    ringing = ring(BOB).state
    first = advance(ringing, "accept", BOB, T0 + 5)
    second = advance(ringing, "accept", BOB, T0 + 5)
    assert first.state == second.state and first.notices == second.notices
    with pytest.raises(Conflict):
        advance(first.state, "accept", BOB, T0 + 6)


def test_band_members_racing_to_accept_both_join_and_the_first_answer_counts():
    ringing = ring(BOB, CAROL, band="b1").state
    bob_first = advance(ringing, "accept", BOB, T0 + 5).state
    carol_retried = advance(bob_first, "accept", CAROL, T0 + 6)
    assert carol_retried.state.joined == {CALLER, BOB, CAROL}
    assert carol_retried.state.answered_at == T0 + 5
    assert sent(carol_retried)[0] == ("call:accepted", (CALLER,), False)
    with pytest.raises(Conflict):
        advance(carol_retried.state, "accept", CAROL, T0 + 7)


def test_declining_twice_changes_nothing_and_after_accepting_is_a_conflict():
    once = advance(ring(BOB, CAROL, band="b1").state, "decline", BOB, T0 + 1)
    twice = advance(once.state, "decline", BOB, T0 + 2)
    assert twice.state == once.state and twice.notices == ()
    accepted = advance(ring(BOB).state, "accept", BOB, T0 + 1).state
    with pytest.raises(Conflict):
        advance(accepted, "decline", BOB, T0 + 2)


def test_band_call_declined_by_all_tells_the_caller_who_was_last():
    state = advance(ring(BOB, CAROL, band="b1").state, "decline", BOB, T0 + 1).state
    last = advance(state, "decline", CAROL, T0 + 2)
    ended = [n for n in last.notices if n.event == "call:ended"]
    assert [n.payload for n in ended] == [{"call": "c1", "by": CAROL, "duration": 0}]
    assert last.state.ended_by == CAROL and last.state.next_deadline() is None


def test_a_ringing_member_hanging_up_declines_and_hanging_up_twice_is_harmless():
    state = ring(BOB, CAROL, DAVE, band="b1").state
    state = advance(state, "accept", BOB, T0 + 1).state
    state = advance(state, "accept", CAROL, T0 + 2).state
    dave = advance(state, "hangup", DAVE, T0 + 3)
    assert DAVE in dave.state.declined and not dave.finished
    assert sent(dave)[0] == ("call:declined", (CALLER,), False)
    left = advance(dave.state, "hangup", BOB, T0 + 4).state
    again = advance(left, "hangup", BOB, T0 + 5)
    assert again.state == left and again.notices == ()


def test_room_finished_while_ringing_cancels_it_for_the_caller_and_everyone_ringing():
    state = advance(ring(BOB, CAROL, band="b1").state, "decline", BOB, T0 + 1).state
    finished = advance(state, "room_finished", None, T0 + 2)
    assert finished.finished and finished.state.outcome == "cancelled"
    assert finished.state.ended_by is None
    assert sent(finished) == [("call:cancelled", (CALLER, CAROL), False)]


def test_room_finished_ends_an_answered_band_call_for_everyone_involved():
    state = advance(ring(BOB, CAROL, band="b1").state, "accept", BOB, T0 + 1).state
    finished = advance(state, "room_finished", None, T0 + 11)
    assert finished.finished and finished.state.outcome == "answered"
    (notice,) = finished.notices
    assert notice.event == "call:ended" and notice.users == (BOB, CALLER, CAROL)
    assert notice.payload == {"call": "c1", "by": None, "duration": 10}


def test_band_call_nobody_answers_is_missed_by_the_caller_and_those_still_ringing():
    state = advance(ring(BOB, CAROL, band="b1").state, "decline", BOB, T0 + 1).state
    missed = advance(state, "timeout", None, T0 + RING_MS)
    assert missed.finished and missed.state.outcome == "missed"
    assert sent(missed) == [("call:missed", (CALLER, CAROL), False)]


def test_reports_on_an_ended_call_or_about_strangers_change_nothing():
    ended = advance(ring(BOB).state, "cancel", CALLER, T0 + 1).state
    for event, actor in (("joined", BOB), ("left", BOB), ("room_finished", None)):
        report = advance(ended, event, actor, T0 + 2)  # type: ignore[arg-type]
        assert report.state == ended and report.notices == ()
    active = advance(ring(BOB).state, "accept", BOB, T0 + 1).state
    for event, actor in (("left", EVE), ("joined", EVE), ("joined", BOB), ("left", None)):
        report = advance(active, event, actor, T0 + 2)  # type: ignore[arg-type]
        assert report.state == active and report.notices == ()
    ringing = ring(BOB).state
    assert advance(ringing, "joined", CALLER, T0 + 1).state == ringing


def _every_kind_of_transition() -> list[Transition]:
    band = ring(BOB, CAROL, DAVE, band="b1")
    accepted = advance(band.state, "accept", BOB, T0 + 1)
    declined = advance(accepted.state, "decline", CAROL, T0 + 2)
    rung_out = advance(declined.state, "timeout", None, T0 + RING_MS)
    left = advance(rung_out.state, "hangup", BOB, T0 + RING_MS + 1)
    ended = advance(left.state, "hangup", CALLER, T0 + RING_MS + 2)
    direct = ring(BOB).state
    return [
        band,
        accepted,
        declined,
        rung_out,
        left,
        ended,
        ring(BOB, busy=frozenset({BOB})),
        advance(direct, "cancel", CALLER, T0 + 1),
        advance(direct, "decline", BOB, T0 + 1),
        advance(direct, "timeout", None, T0 + RING_MS),
        advance(direct, "room_finished", None, T0 + 1),
        advance(advance(direct, "accept", BOB, T0 + 1).state, "timeout", None, T0 + 1 + MAX_MS),
    ]


def test_every_notice_the_machine_sends_matches_its_pushed_model():
    notices = [n for t in _every_kind_of_transition() for n in t.notices]
    assert {n.event for n in notices} == set(get_args(PushedCallEvent))
    for notice in notices:
        model = PUSHED_EVENTS[notice.event]
        assert model.__module__ == "hub.calls.views"
        model.model_validate(notice.payload)


def test_every_pushed_call_event_has_its_own_model():
    models = [PUSHED_EVENTS[name] for name in get_args(PushedCallEvent)]
    assert len(set(models)) == len(models)
    with pytest.raises(pydantic.ValidationError):
        PUSHED_EVENTS["call:ended"].model_validate({"call": "c1", "by": None})
    with pytest.raises(pydantic.ValidationError):
        PUSHED_EVENTS["call:missed"].model_validate({"call": "c1", "extra": 1})


def test_invite_ack_carries_the_callers_token_or_none_when_busy():
    instances = _instances()
    start = ring(BOB).state
    grant = instances.mint("main", start.room, identity=CALLER, name="C", media="video", now_ms=T0)
    ack = views.invite_ack(start, "wss://main.example", grant)
    views.CallInviteAck.model_validate(ack)
    assert ack == {
        "ok": True,
        "call": {
            "id": "c1",
            "room": "call-c1",
            "instance": "main",
            "url": "wss://main.example",
            "token": grant.token,
            "expiresAt": T0 + RING_MS,
            "status": "ringing",
        },
    }
    busy = ring(BOB, busy=frozenset({BOB})).state
    busy_ack = views.invite_ack(busy, "wss://main.example", None)
    assert busy_ack["call"]["status"] == "busy" and busy_ack["call"]["token"] is None
    assert views.accept_ack(grant) == {
        "ok": True,
        "url": "wss://main.example",
        "room": "call-c1",
        "token": grant.token,
    }


CALL_ID = "0b5c3a4e-1111-4222-8333-944445555666"
DIRECT = FinishedCall(
    id=CALL_ID,
    caller_id=CALLER,
    callee_id=BOB,
    band_id=None,
    instance="main",
    media="audio",
    started_at=T0,
    answered_at=T0 + 1_000,
    ended_at=T0 + 61_000,
    outcome="answered",
)


def test_history_items_name_the_callee_or_the_band_never_both():
    band = replace(DIRECT, callee_id=None, band_id="b1", answered_at=None, outcome="missed")
    answer = views.history_answer(Page([DIRECT, band], "next"))
    views.CallHistoryPage.model_validate(answer)
    first, second = answer["items"]
    assert first["from"] == CALLER and first["to"] == BOB and "band" not in first
    assert first["duration"] == 60_000 and first["answeredAt"] == T0 + 1_000
    assert second["band"] == "b1" and "to" not in second
    assert second["answeredAt"] is None and second["duration"] == 0
    assert answer["nextCursor"] == "next"
    with pytest.raises(pydantic.ValidationError):
        views.history_item(replace(DIRECT, outcome="hung up"))


def test_history_cursor_is_the_one_codec_and_refuses_what_it_did_not_make():
    rows = [DIRECT, replace(DIRECT, id=str(uuid.uuid4()), started_at=T0 - 1)]
    page = page_of(rows, 1, history_position)
    assert page.items == [DIRECT] and page.next_cursor is not None
    assert parse_history_cursor(page.next_cursor) == (T0, CALL_ID)
    assert parse_history_cursor(None) == FIRST_PAGE
    assert page_of(rows, 2, history_position).next_cursor is None
    for bad in (
        f"{T0}.{CALL_ID}",
        encode_cursor([str(2**63), CALL_ID]),
        encode_cursor(["-1", CALL_ID]),
        encode_cursor([str(T0), "c1"]),
        encode_cursor([str(T0)]),
    ):
        with pytest.raises(InvalidPayload):
            parse_history_cursor(bad)


def _instances() -> LiveKitInstances:
    configs = [
        LiveKitInstanceConfig("main", "wss://main.example", "https://main.example", "km", "s" * 32),
        LiveKitInstanceConfig("chat", "wss://chat.example", "https://chat.example", "kc", "t" * 32),
    ]
    return LiveKitInstances(configs, token_seconds=600)


def test_tokens_are_room_scoped_short_lived_and_share_screens_only_on_main():
    instances = _instances()
    now_ms = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
    grant = instances.mint(
        "main", "call-x", identity="u1", name="Ann", media="audio", now_ms=now_ms
    )
    claims = TokenVerifier("km", "s" * 32).verify(grant.token)
    assert claims.identity == "u1" and claims.name == "Ann"
    assert claims.video is not None and claims.video.room == "call-x" and claims.video.room_join
    assert claims.video.can_publish_sources == ["microphone", "screen_share", "screen_share_audio"]
    raw = jwt.decode(grant.token, options={"verify_signature": False})
    assert raw["exp"] - raw["nbf"] == 600 and grant.expires_at == now_ms + 600_000
    chat = instances.mint("chat", "band-x", identity="u1", name="Ann", media="video", now_ms=0)
    chat_claims = TokenVerifier("kc", "t" * 32).verify(chat.token)
    assert chat_claims.video is not None
    assert chat_claims.video.can_publish_sources == ["camera", "microphone"]
    with pytest.raises(jwt.InvalidSignatureError):
        TokenVerifier("km", "t" * 32).verify(grant.token)


def test_an_instance_without_configuration_is_refused_clearly():
    with pytest.raises(InstanceNotConfigured, match="LIVEKIT_MEET_URL"):
        _instances().instance("meet")


def test_livekit_settings_dev_defaults_and_partial_configuration(tmp_path):
    dev = Settings.from_env({"HUB_DATA_DIR": str(tmp_path)}).with_defaults_filled()
    assert [i.name for i in dev.calls.livekit_instances] == ["main", "meet", "chat"]
    assert dev.calls.livekit_instances[0].url == "ws://127.0.0.1:7880"
    assert dev.calls.livekit_instances[0].api_url == "http://127.0.0.1:7880"
    assert (tmp_path / "livekit.secret").read_text() == dev.calls.livekit_instances[0].api_secret
    assert "api_secret" not in repr(dev.calls.livekit_instances[0])
    only_main = Settings.from_env(
        {
            "HUB_DATA_DIR": str(tmp_path),
            "LIVEKIT_MAIN_URL": "wss://lk.example",
            "LIVEKIT_MAIN_API_KEY": "k",
            "LIVEKIT_MAIN_API_SECRET": "s",
        }
    ).with_defaults_filled()
    assert [(i.name, i.api_url) for i in only_main.calls.livekit_instances] == [
        ("main", "https://lk.example")
    ]
    with pytest.raises(SettingsError, match="LIVEKIT_CHAT_API_SECRET"):
        Settings.from_env({"LIVEKIT_CHAT_URL": "ws://x", "LIVEKIT_CHAT_API_KEY": "k"})


def test_room_names_the_hub_hands_out():
    uid = "0b5c3a4e-1111-4222-8333-944445555666"
    assert parse_room(f"call-{uid}") == ("call", uid)
    assert parse_room(f"band-{uid}") == ("band", uid)
    assert parse_room(f"user-{uid}") == ("user", uid)
    assert parse_room("lobby") is None and parse_room(f"call-{uid}x") is None
