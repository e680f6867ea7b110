"""The pure message-request rule: each direct message of a batch decided in order."""

from __future__ import annotations

from hub.messaging.requests import RequestRule
from storage.sql.consent import PairState

RULE = RequestRule(max_request_messages=3, requests_per_day=2)
A, B, C, D = "a", "b", "c", "d"


def state(sender: str, recipient: str, **fields: object) -> PairState:
    base: dict[str, object] = {
        "status": None,
        "requester": None,
        "request_messages": 0,
        "blocked": False,
        "shares_band": False,
        "opened_today": 0,
    }
    base.update(fields)
    return PairState(sender, recipient, **base)  # type: ignore[arg-type]


def test_a_new_request_takes_three_messages_and_refuses_the_fourth_in_one_batch() -> None:
    sends = [(f"m{i}", A, B) for i in range(4)]
    decision = RULE(sends, {(A, B): state(A, B)}, 1000)
    assert [decision.verdicts[f"m{i}"] for i in range(4)] == [
        "request",
        "request",
        "request",
        "pending_full",
    ]
    (write,) = decision.writes
    assert (write.status, write.requester, write.requested_at, write.added_messages) == (
        "pending",
        A,
        1000,
        3,
    )


def test_a_reply_accepts_and_what_follows_is_plain() -> None:
    pending = {"status": "pending", "requester": A, "request_messages": 3}
    states = {(B, A): state(B, A, **pending), (A, B): state(A, B, **pending)}
    decision = RULE([("r", B, A), ("m", A, B)], states, 5)
    assert decision.verdicts == {"r": "send", "m": "send"}
    assert decision.accepted == [(B, A)]
    assert [w.status for w in decision.writes] == ["accepted"]


def test_blocks_declines_band_mates_and_the_daily_limit() -> None:
    states = {
        (A, B): state(A, B, status="accepted", blocked=True),
        (A, C): state(A, C, status="declined", requester=A),
        (A, D): state(A, D, shares_band=True),
        (B, C): state(B, C, opened_today=2),
    }
    decision = RULE([("1", A, B), ("2", A, C), ("3", A, D), ("4", B, C)], states, 5)
    assert decision.verdicts == {"1": "refused", "2": "refused", "3": "send", "4": "daily_full"}
    assert [(w.user_a, w.user_b, w.status) for w in decision.writes] == [(A, D, "accepted")]


def test_accepted_contacts_write_nothing() -> None:
    decision = RULE([("1", A, B)], {(A, B): state(A, B, status="accepted")}, 5)
    assert decision.verdicts == {"1": "send"} and decision.writes == []
