"""The band's calendar feed: fetched without a Bearer token by its secret URL, parsed back
as iCalendar, and dead (404) once the URL is rotated."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import parse_qs, urlsplit

import aiohttp
from icalendar import Calendar

from tests.support import Api
from tests.support.bands import create_band, create_gig


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def test_the_calendar_url_serves_the_band_gigs_as_icalendar(hub_node) -> None:
    api = Api(hub_node.url)
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob, name="The Rockers")
    evening = await create_gig(
        api,
        alice,
        band["id"],
        venueName="Paradiso, Main Hall",
        startTime="20:30",
        endTime="23:15",
        notes="Load-in 17:00; bring the \\ spare cables",
    )
    all_day = await create_gig(api, alice, band["id"], venueName="Festival", date="2031-07-04")
    other_band = await create_band(api, bob, name="Other")
    await create_gig(api, bob, other_band["id"], venueName="Not in this feed")
    status, content_type, raw = await fetch(band["calendarUrl"])
    assert status == 200 and content_type.startswith("text/calendar")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    calendar = Calendar.from_ical(raw)
    assert str(calendar["X-WR-CALNAME"]) == "The Rockers"
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {
        f"gig-{evening['id']}@artist-space.app",
        f"gig-{all_day['id']}@artist-space.app",
    }
    first = events[f"gig-{evening['id']}@artist-space.app"]
    assert str(first["SUMMARY"]) == "The Rockers @ Paradiso, Main Hall"
    assert str(first["DESCRIPTION"]) == "Load-in 17:00; bring the \\ spare cables"
    assert first.decoded("DTSTART") == dt.datetime(2031, 5, 1, 20, 30)
    assert first.decoded("DTEND") == dt.datetime(2031, 5, 1, 23, 15)
    second = events[f"gig-{all_day['id']}@artist-space.app"]
    assert second.decoded("DTSTART") == dt.date(2031, 7, 4)


async def test_rotating_the_token_kills_the_old_url(hub_node) -> None:
    api = Api(hub_node.url)
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob)
    old_url = band["calendarUrl"]
    assert (await fetch(old_url))[0] == 200
    status, rotated = await api.request(
        "POST", f"/api/bands/{band['id']}/calendar-token", token=alice.access_token
    )
    assert status == 200 and rotated["calendarUrl"] != old_url
    assert (await fetch(old_url))[0] == 404
    assert (await fetch(rotated["calendarUrl"]))[0] == 200
    status, again = await api.request("GET", f"/api/bands/{band['id']}", token=alice.access_token)
    assert again["calendarUrl"] == rotated["calendarUrl"]  # stable until the next rotation
    token = parse_qs(urlsplit(rotated["calendarUrl"]).query)["token"][0]
    feed = f"{hub_node.url}/api/bands/{band['id']}/calendar.ics"
    other_last = "B" if token.endswith("A") else "A"  # "A" alone made the same token 1 in 64
    for wrong, expected in (
        (f"{feed}?token={token[:-1]}{other_last}", 404),
        (f"{feed}?token=", 400),
        (feed, 400),
    ):
        assert (await fetch(wrong))[0] == expected, wrong
    assert (await fetch(f"{feed}?token={token}"))[0] == 200
    elsewhere = f"{hub_node.url}/api/bands/{uuid.uuid4()}/calendar.ics?token={token}"
    assert (await fetch(elsewhere))[0] == 404  # a token opens only its own band
    await api.request("DELETE", f"/api/bands/{band['id']}", token=alice.access_token)
    assert (await fetch(rotated["calendarUrl"]))[0] == 404
