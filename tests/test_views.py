"""The wire shapes of messaging, accounts and bands, without a server: each hot-path dict is
typed against a ``TypedDict`` that must match its model key for key, the builders' output
validates against the models, and optional keys are left out rather than sent as null."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pydantic
import pytest

from hub.accounts.views import (
    ProfileView,
    SessionView,
    keys_changed_event,
    profile_view,
    session_view,
)
from hub.bands.views import BandUpdatedEvent, BandView, band_updated_event, band_view
from hub.messaging.views import (
    WIRE_SHAPES,
    ConversationPage,
    MessagePage,
    MessageView,
    ReceiptView,
    SyncPageView,
    TypingView,
    conversation_page,
    message_new,
    message_page,
    receipt_event,
    sync_page,
    typing_in_band,
    typing_to_user,
)
from hub.protocol.models import PUSHED_EVENTS, View
from storage.sql.bands import BandRecord, BandRow, MemberRow
from storage.sql.message_rows import ConversationSummary, StoredCopy
from storage.sql.users import UserRow

ALICE = "0b5c0000-0000-4000-8000-00000000000a"
BOB = "0b5c0000-0000-4000-8000-00000000000b"
BAND = "0b5c0000-0000-4000-8000-0000000000ba"
MESSAGE = "0b5c0000-0000-4000-8000-0000000000e1"


def _shape(tp: Any, *, optional: bool = False) -> Any:
    """A type with the paired models replaced by their TypedDicts, comparable across both."""
    if tp in WIRE_SHAPES:
        return WIRE_SHAPES[tp]
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        members = frozenset(_shape(a) for a in args if not (optional and a is type(None)))
        return next(iter(members)) if len(members) == 1 else members
    if origin is Literal:
        return (Literal, frozenset(args))
    if origin is not None:
        return (origin, tuple(_shape(a) for a in args))
    return tp


@pytest.mark.parametrize("model", list(WIRE_SHAPES), ids=lambda m: m.__name__)
def test_each_hot_path_dict_has_the_keys_and_types_of_its_model(model: type[View]) -> None:
    typed = WIRE_SHAPES[model]
    hints = get_type_hints(typed)
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    assert set(hints) == set(fields), f"{typed.__name__} and {model.__name__} differ in keys"
    required = {key for key, field in fields.items() if field.is_required()}
    assert set(typed.__required_keys__) == required, f"{typed.__name__}: required keys differ"
    for key, field in fields.items():
        assert _shape(hints[key]) == _shape(field.annotation, optional=key not in required), (
            f"{typed.__name__}[{key!r}] is {hints[key]}, the model says {field.annotation}"
        )


def test_a_typeddict_that_drifted_would_be_caught() -> None:
    class Drifted(typing.TypedDict):
        ids: list[str]
        by: str
        status: str  # the model says Literal["delivered", "read"]
        ts: int

    assert _shape(get_type_hints(Drifted)["status"]) != _shape(
        ReceiptView.model_fields["status"].annotation
    )


def _copy(user_id: str, *, band: str | None = None) -> StoredCopy:
    peer = BOB if user_id == ALICE else ALICE
    return StoredCopy(
        user_id=user_id,
        seq=7,
        message_id=MESSAGE,
        sender_id=ALICE,
        band_id=band,
        conversation_id=band or peer,
        peer=peer,
        ciphertext=bytes(range(16)),
        nonce=bytes(24),
        ts=1_900_000_000_000,
    )


def test_message_new_names_the_other_side_of_a_direct_message_for_each_copy() -> None:
    received = MessageView.model_validate(message_new(_copy(BOB)))
    assert (received.from_, received.to, received.seq) == (ALICE, BOB, 7)
    sent = message_new(_copy(ALICE))  # the sender's own copy, on their other devices
    assert sent["to"] == BOB and "band" not in sent
    in_band = message_new(_copy(BOB, band=BAND))
    assert in_band["band"] == BAND and "to" not in in_band
    MessageView.model_validate(in_band)


def test_the_messaging_pages_and_events_validate_against_their_models() -> None:
    copies = [_copy(BOB), _copy(BOB, band=BAND)]
    SyncPageView.model_validate(sync_page(copies, True))
    MessagePage.model_validate(message_page(copies, {}, "opaque"))
    summaries = [ConversationSummary(c.conversation_id, c.band_id, c, 2) for c in copies]
    page = ConversationPage.model_validate(conversation_page(summaries, None))
    assert [c.kind for c in page.items] == ["direct", "band"]
    ReceiptView.model_validate(receipt_event([MESSAGE], BOB, "read", 1))
    assert set(typing_to_user(ALICE, BOB, "start")) == {"from", "to", "state"}
    assert set(typing_in_band(ALICE, BAND, "stop")) == {"from", "band", "state"}
    TypingView.model_validate(typing_in_band(ALICE, BAND, "stop"))
    assert PUSHED_EVENTS["message:new"] is MessageView
    assert PUSHED_EVENTS["typing"] is TypingView


USER = UserRow(ALICE, "ada@example.com", "Ada", "user", "a2V5", 5, None)


def test_the_email_is_only_in_a_profile_for_its_owner_and_in_a_login() -> None:
    assert profile_view(USER, with_email=False).wire() == {
        "id": ALICE,
        "name": "Ada",
        "publicKey": "a2V5",
    }
    assert profile_view(USER, with_email=True).wire()["email"] == "ada@example.com"
    login = session_view("access", "refresh", 9, USER).wire()
    assert login["user"] == {"id": ALICE, "email": "ada@example.com", "name": "Ada"}
    refreshed = session_view("access", "refresh", 9, None).wire()
    assert set(refreshed) == {"accessToken", "refreshToken", "expiresAt"}  # no user: null
    SessionView.model_validate(login)
    ProfileView.model_validate(profile_view(USER, with_email=False).wire())
    assert keys_changed_event(ALICE, "a2V5", 5).wire() == {
        "userId": ALICE,
        "publicKey": "a2V5",
        "ts": 5,
    }


RECORD = BandRecord(
    BandRow(BAND, "The Rockers", None, ALICE, "salt"),
    [MemberRow(ALICE, "owner", 1), MemberRow(BOB, "member", 2)],
)


def test_a_band_carries_calendar_url_only_when_given_and_a_push_never() -> None:
    plain = band_view(RECORD).wire()
    assert "calendarUrl" not in plain and plain["genre"] is None  # null, not left out
    managed = band_view(RECORD, calendar_url="https://hub/x.ics").wire()
    assert managed["calendarUrl"] == "https://hub/x.ics"
    BandView.model_validate(managed)
    pushed = band_updated_event(RECORD, "member_added", BOB).wire()
    assert pushed["userId"] == BOB and "calendarUrl" not in pushed["band"]
    assert "userId" not in band_updated_event(RECORD, "updated", None).wire()
    BandUpdatedEvent.model_validate(pushed)


def test_a_view_refuses_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError):
        MessageView.model_validate(message_new(_copy(BOB)) | {"extra": 1})
