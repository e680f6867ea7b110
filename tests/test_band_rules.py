"""The pure rules behind bands and gigs: the gig state machine, who manages a band, who may
change roles or remove whom, opaque cursors, the calendar serializer, and the API_RATE_LIMIT
setting."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from icalendar import Calendar

from hub.bands.calendar import render_calendar
from hub.bands.gigs import GIG_STATUSES, check_details, next_status
from hub.bands.service import check_removal, may_manage, plan_role_change
from hub.errors import Conflict, Forbidden, HubError, InvalidPayload
from hub.protocol.cursors import (
    MAX_CURSOR_INT,
    cursor_int,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    page_of,
    read_part,
)
from hub.settings import Settings, SettingsError
from storage.sql.gigs import GigDetails, GigRow

LEGAL_MOVES = {
    ("inquiry", "confirmed"),
    ("inquiry", "cancelled"),
    ("confirmed", "played"),
    ("confirmed", "cancelled"),
    ("played", "paid"),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(GIG_STATUSES, repeat=2)))
def test_gig_status_moves_only_forward_and_cancels_only_before_played(
    current: str, target: str
) -> None:
    if current == target:
        assert next_status(current, target) is None
    elif (current, target) in LEGAL_MOVES:
        assert next_status(current, target) == target
    else:
        with pytest.raises(Conflict) as refused:
            next_status(current, target)
        details = refused.value.details or {}
        assert set(details["allowed"]) == {t for c, t in LEGAL_MOVES if c == current}
        assert (details["from"], details["to"]) == (current, target)


def test_every_gig_status_is_in_the_machine_and_final_ones_go_nowhere() -> None:
    assert set(GIG_STATUSES) == {"inquiry", "confirmed", "played", "paid", "cancelled"}
    for final in ("paid", "cancelled"):
        for target in GIG_STATUSES:
            if target != final:
                with pytest.raises(Conflict):
                    next_status(final, target)


def test_an_end_time_needs_a_start_time() -> None:
    evening = _gig("g", start_time=dt.time(20, 0), end_time=dt.time(23, 0)).details
    check_details(evening)
    check_details(dataclasses.replace(evening, end_time=None))
    with pytest.raises(InvalidPayload) as refused:
        check_details(dataclasses.replace(evening, start_time=None))
    assert (refused.value.details or {})["field"] == "endTime"


@pytest.mark.parametrize(
    ("role", "manages"),
    [("owner", True), ("admin", True), ("member", False), (None, False), ("Owner", False)],
)
def test_only_owners_and_admins_manage_a_band(role: str | None, manages: bool) -> None:
    assert may_manage(role) is manages


ROLES = ("owner", "admin", "member")
# (actor's role, target's role or "self", new role) -> what happens, as docs/protocol.md
# says: managers change roles between admin and member; only the owner makes someone owner
# (a handover); the owner's own role changes only that way.
ROLE_CHANGES: dict[tuple[str, str, str], str | type[HubError]] = {
    ("owner", "self", "owner"): "unchanged",
    ("owner", "self", "admin"): Conflict,
    ("owner", "self", "member"): Conflict,
    ("owner", "admin", "owner"): "handover",
    ("owner", "admin", "admin"): "unchanged",
    ("owner", "admin", "member"): "set",
    ("owner", "member", "owner"): "handover",
    ("owner", "member", "admin"): "set",
    ("owner", "member", "member"): "unchanged",
    ("admin", "self", "owner"): Forbidden,
    ("admin", "self", "admin"): "unchanged",
    ("admin", "self", "member"): "set",
    ("admin", "owner", "owner"): Forbidden,
    ("admin", "owner", "admin"): Forbidden,
    ("admin", "owner", "member"): Forbidden,
    ("admin", "admin", "owner"): Forbidden,
    ("admin", "admin", "admin"): "unchanged",
    ("admin", "admin", "member"): "set",
    ("admin", "member", "owner"): Forbidden,
    ("admin", "member", "admin"): "set",
    ("admin", "member", "member"): "unchanged",
    **{("member", target, new): Forbidden for target in ("self", *ROLES) for new in ROLES},
}


@pytest.mark.parametrize(("actor_role", "target", "new_role"), list(ROLE_CHANGES))
def test_every_role_change(actor_role: str, target: str, new_role: str) -> None:
    expected = ROLE_CHANGES[(actor_role, target, new_role)]
    target_id, target_role = ("actor", actor_role) if target == "self" else ("other", target)
    if isinstance(expected, str):
        assert plan_role_change("actor", actor_role, target_id, target_role, new_role) == expected
    else:
        with pytest.raises(expected):
            plan_role_change("actor", actor_role, target_id, target_role, new_role)


# (actor's role, target's role or "self") -> allowed, or the error: anyone but the owner may
# leave; managers remove others; nobody removes the owner.
REMOVALS: dict[tuple[str, str], type[HubError] | None] = {
    ("owner", "self"): Conflict,
    ("owner", "admin"): None,
    ("owner", "member"): None,
    ("admin", "self"): None,
    ("admin", "owner"): Forbidden,
    ("admin", "admin"): None,
    ("admin", "member"): None,
    ("member", "self"): None,
    ("member", "owner"): Forbidden,
    ("member", "admin"): Forbidden,
    ("member", "member"): Forbidden,
}


@pytest.mark.parametrize(("actor_role", "target"), list(REMOVALS))
def test_every_removal(actor_role: str, target: str) -> None:
    expected = REMOVALS[(actor_role, target)]
    target_id, target_role = ("actor", actor_role) if target == "self" else ("other", target)
    if expected is None:
        check_removal("actor", actor_role, target_id, target_role)
    else:
        with pytest.raises(expected):
            check_removal("actor", actor_role, target_id, target_role)


def test_role_changes() -> None:
    assert plan_role_change("o", "owner", "m", "member", "owner") == "handover"
    assert plan_role_change("o", "owner", "o", "owner", "owner") == "unchanged"
    assert plan_role_change("a", "admin", "m", "member", "admin") == "set"
    assert plan_role_change("a", "admin", "b", "admin", "member") == "set"
    assert plan_role_change("a", "admin", "m", "member", "member") == "unchanged"
    with pytest.raises(Forbidden):
        plan_role_change("a", "admin", "m", "member", "owner")
    with pytest.raises(Forbidden):
        plan_role_change("a", "admin", "o", "owner", "member")
    with pytest.raises(Forbidden):
        plan_role_change("m", "member", "x", "member", "admin")
    with pytest.raises(Conflict):
        plan_role_change("o", "owner", "o", "owner", "admin")


def test_removals() -> None:
    check_removal("m", "member", "m", "member")  # leaving
    check_removal("a", "admin", "a", "admin")
    check_removal("a", "admin", "m", "member")
    check_removal("o", "owner", "a", "admin")
    with pytest.raises(Conflict):
        check_removal("o", "owner", "o", "owner")
    with pytest.raises(Forbidden):
        check_removal("a", "admin", "o", "owner")
    with pytest.raises(Forbidden):
        check_removal("m", "member", "x", "member")


def test_cursors_round_trip_and_garbage_is_refused() -> None:
    cursor = encode_cursor(["Ünïcode, band", "0b5c0000-0000-4000-8000-000000000000"])
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, 2) == ["Ünïcode, band", "0b5c0000-0000-4000-8000-000000000000"]
    for garbage in ("", "!!", "e30", encode_cursor(["one"]), "x" * 600):
        with pytest.raises(InvalidPayload):
            decode_cursor(garbage, 2)
    page = page_of([1, 2, 3], 2, lambda n: [str(n)])
    assert page.items == [1, 2] and decode_cursor(page.next_cursor or "", 1) == ["2"]
    assert page_of([1, 2], 2, lambda n: [str(n)]).next_cursor is None


@pytest.mark.parametrize("part", ["-1", str(MAX_CURSOR_INT + 1), "1.5", "x", "", "9" * 30])
def test_a_forged_number_in_a_cursor_is_refused_before_any_query(part: str) -> None:
    with pytest.raises(InvalidPayload):
        read_part(part, cursor_int)


def test_cursor_parts_parse_to_what_the_queries_take() -> None:
    assert read_part("0", cursor_int) == 0 and read_part(str(MAX_CURSOR_INT), cursor_int) > 0
    upper = "0B5C0000-0000-4000-8000-00000000000A"
    assert read_part(upper, cursor_uuid) == upper.lower()
    with pytest.raises(InvalidPayload):
        read_part("not-a-uuid", cursor_uuid)
    with pytest.raises(InvalidPayload):
        read_part("2031-02-30", dt.date.fromisoformat)


def _gig(gig_id: str, **changes: object) -> GigRow:
    details = GigDetails(
        venue_name="Paradiso",
        date=dt.date(2031, 5, 1),
        start_time=None,
        end_time=None,
        fee_amount=0,
        currency="EUR",
        location_address=None,
        notes=None,
    )
    details = dataclasses.replace(details, **{k: v for k, v in changes.items() if k != "status"})
    status = str(changes.get("status", "confirmed"))
    return GigRow(gig_id, "band-1", details, status, 1_900_000_000_000, 1_900_000_000_000)


def test_the_calendar_is_rfc_5545_text_that_parses_back() -> None:
    long_notes = "Ünïcødé " * 30 + "\nsecond line, with; all \\ the specials"
    gigs = [
        _gig("all-day", status="inquiry"),
        _gig("evening", start_time=dt.time(20, 30), end_time=dt.time(23, 0), notes=long_notes),
        _gig("late", start_time=dt.time(22, 0), end_time=dt.time(1, 30), status="cancelled"),
        _gig("open-end", start_time=dt.time(19, 0), location_address="Main St 1, Town"),
    ]
    raw = render_calendar("The Rockers; live, \\ loud", gigs)
    text = raw.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert all(len(line.encode()) <= 75 for line in lines), max(lines, key=len)
    assert any(line.startswith(" ") for line in lines)  # the long notes were folded
    assert "X-WR-CALNAME:The Rockers\\; live\\, \\\\ loud" in lines
    unfolded = text.replace("\r\n ", "")
    assert (
        "DESCRIPTION:"
        + long_notes.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\n", "\\n")
        in unfolded
    )
    events = {str(e["UID"]).split("@")[0]: e for e in Calendar.from_ical(raw).walk("VEVENT")}
    assert set(events) == {"gig-all-day", "gig-evening", "gig-late", "gig-open-end"}
    all_day = events["gig-all-day"]
    assert all_day.decoded("DTSTART") == dt.date(2031, 5, 1)
    assert all_day.decoded("DTEND") == dt.date(2031, 5, 2)
    assert "DTSTART;VALUE=DATE:20310501" in lines and str(all_day["STATUS"]) == "TENTATIVE"
    evening = events["gig-evening"]
    assert evening.decoded("DTSTART") == dt.datetime(2031, 5, 1, 20, 30)  # floating
    assert evening.decoded("DTEND") == dt.datetime(2031, 5, 1, 23, 0)
    assert str(evening["DESCRIPTION"]) == long_notes
    assert events["gig-late"].decoded("DTEND") == dt.datetime(2031, 5, 2, 1, 30)
    assert str(events["gig-late"]["STATUS"]) == "CANCELLED"
    assert "DTEND" not in events["gig-open-end"]
    assert str(events["gig-open-end"]["LOCATION"]) == "Main St 1, Town"
    assert all(e.decoded("DTSTAMP").tzinfo is not None for e in events.values())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, (100, 900)), ("", (100, 900)), ("5/60", (5, 60)), ("off", None), ("OFF", None)],
)
def test_api_rate_limit_setting(raw: str | None, expected: tuple[int, int] | None) -> None:
    env = {} if raw is None else {"API_RATE_LIMIT": raw}
    assert Settings.from_env(env).api.rate_limit == expected


@pytest.mark.parametrize("raw", ["100", "100/", "/900", "0/900", "100/0", "a/b", "-1/5"])
def test_a_bad_api_rate_limit_is_refused_at_start(raw: str) -> None:
    with pytest.raises(SettingsError, match="API_RATE_LIMIT"):
        Settings.from_env({"API_RATE_LIMIT": raw})
