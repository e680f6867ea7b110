"""A band's gigs as an iCalendar feed (RFC 5545) that phone calendars subscribe to.

The serializing (CRLF line ends, folding at 75 octets, escaping of ``, ; \\`` and newlines) is
the ``icalendar`` library's; what goes in is decided here. Gig times are wall-clock times at
the venue with no time zone known, so they are written as floating times, which a calendar
shows as given wherever the phone is. A gig without a start time is an all-day event; one
whose end is not after its start ends the next day (a show past midnight).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from icalendar import Calendar, Event, vDuration, vText

from storage.sql.gigs import GigRow

PRODUCT_ID = "-//Artist Space//Hub//EN"
UID_DOMAIN = "artist-space.app"
REFRESH = dt.timedelta(hours=1)
ICAL_STATUS = {
    "inquiry": "TENTATIVE",
    "confirmed": "CONFIRMED",
    "played": "CONFIRMED",
    "paid": "CONFIRMED",
    "cancelled": "CANCELLED",
}


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).replace(microsecond=0)


def gig_event(band_name: str, gig: GigRow) -> Event:
    d = gig.details
    event = Event()
    event.add("uid", vText(f"gig-{gig.id}@{UID_DOMAIN}"))
    event.add("dtstamp", _utc(gig.updated_at))
    event.add("last-modified", _utc(gig.updated_at))
    event.add("summary", vText(f"{band_name} @ {d.venue_name}"))
    if d.start_time is None:
        event.add("dtstart", d.date)
        event.add("dtend", d.date + dt.timedelta(days=1))
    else:
        start = dt.datetime.combine(d.date, d.start_time)
        event.add("dtstart", start)
        if d.end_time is not None:
            end = dt.datetime.combine(d.date, d.end_time)
            if end <= start:
                end += dt.timedelta(days=1)
            event.add("dtend", end)
    event.add("location", vText(d.location_address or d.venue_name))
    if d.notes:
        event.add("description", vText(d.notes))
    event.add("status", ICAL_STATUS[gig.status])
    return event


def render_calendar(band_name: str, gigs: Sequence[GigRow]) -> bytes:
    """The whole feed, as the bytes to serve with ``text/calendar; charset=utf-8``."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("name", vText(band_name))
    calendar.add("x-wr-calname", vText(band_name))
    calendar.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    for gig in gigs:
        calendar.add_component(gig_event(band_name, gig))
    payload: bytes = calendar.to_ical()
    return payload
