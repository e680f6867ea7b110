"""Gigs over REST: members read, owner and admins write; the status state machine; filters
and paging; every change pushed as ``gig:updated`` to the band's members."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hub.bands.views import GigPage, GigUpdatedEvent, GigView
from tests.support import Account, Api, Phone
from tests.support.bands import create_band, create_gig


@pytest.fixture
def api(hub_node) -> Api:  # type: ignore[no-untyped-def]
    return Api(hub_node.url)


async def move(api: Api, who: Account, gig_id: str, status: str) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"/api/gigs/{gig_id}/status", token=who.access_token, json={"status": status}
    )


async def test_a_gig_is_created_by_the_owner_and_read_by_every_member(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob)
    gig = await create_gig(
        api,
        alice,
        band["id"],
        startTime="20:30",
        endTime="23:00",
        feeAmount=150000,
        currency="EUR",
        locationAddress="Weteringschans 6, Amsterdam",
        notes="Load-in 17:00",
    )
    assert gig["status"] == "inquiry" and gig["bandId"] == band["id"]
    assert (gig["date"], gig["startTime"], gig["endTime"]) == ("2031-05-01", "20:30", "23:00")
    assert gig["feeAmount"] == 150000 and isinstance(gig["feeAmount"], int)
    status, seen = await api.request("GET", f"/api/gigs/{gig['id']}", token=bob.access_token)
    # One gig's GET adds what its payments add up to (issue 15).
    assert status == 200 and seen == {**gig, "paidAmount": 0, "outstanding": 150000}
    status, listed = await api.request("GET", "/api/gigs", token=bob.access_token)
    assert status == 200 and listed["items"] == [gig] and listed["nextCursor"] is None
    GigPage.model_validate(listed)
    minimal = await create_gig(api, alice, band["id"], venueName="Melkweg")
    assert minimal["startTime"] is None and minimal["feeAmount"] == 0
    assert minimal["currency"] == "EUR" and minimal["notes"] is None


async def test_strangers_get_404_and_plain_members_403_for_gigs(api: Api) -> None:
    alice, bob, stranger = await api.register_many("alice", "bob", "stranger")
    band = await create_band(api, alice, bob)
    gig = await create_gig(api, alice, band["id"])
    path = f"/api/gigs/{gig['id']}"
    new_gig = {"bandId": band["id"], "venueName": "X", "date": "2031-01-01"}
    for who, expected in ((stranger, 404), (bob, 403)):
        token = who.access_token
        for method, route, body in (
            ("POST", "/api/gigs", new_gig),
            ("PUT", path, {"venueName": "Elsewhere"}),
            ("PUT", f"{path}/status", {"status": "confirmed"}),
        ):
            status, answer = await api.request(method, route, token=token, json=body)
            assert status == expected, (who.name, method, route, answer)
    assert (await api.request("GET", path, token=stranger.access_token))[0] == 404
    status, listed = await api.request("GET", "/api/gigs", token=stranger.access_token)
    assert status == 200 and listed["items"] == []
    status, answer = await api.request(
        "GET", f"/api/gigs?bandId={band['id']}", token=stranger.access_token
    )
    assert status == 404
    assert (await api.request("GET", f"/api/gigs/{uuid.uuid4()}", token=alice.access_token))[
        0
    ] == 404
    assert (await api.request("GET", path))[0] == 401
    status, same = await api.request("GET", path, token=alice.access_token)
    assert same == {**gig, "paidAmount": 0, "outstanding": gig["feeAmount"]}  # nothing changed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"date": "2031-13-01"}, "date"),
        ({"date": "01/05/2031"}, "date"),
        ({"date": None}, "date"),
        ({"startTime": "25:00"}, "startTime"),
        ({"startTime": "8:00"}, "startTime"),
        ({"startTime": "20:00:00"}, "startTime"),
        ({"feeAmount": 1500.5}, "feeAmount"),
        ({"feeAmount": "1500"}, "feeAmount"),
        ({"feeAmount": -1}, "feeAmount"),
        ({"feeAmount": True}, "feeAmount"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"venueName": "  "}, "venueName"),
        ({"endTime": "23:00"}, "endTime"),
        ({"status": "confirmed"}, "status"),
        ({"bandId": "not-a-uuid"}, "bandId"),
    ],
)
async def test_a_gig_with_a_bad_field_is_refused(
    api: Api, change: dict[str, Any], field: str
) -> None:
    alice = await api.register("alice")
    band = await create_band(api, alice)
    body = {"bandId": band["id"], "venueName": "Paradiso", "date": "2031-05-01", **change}
    status, answer = await api.request("POST", "/api/gigs", token=alice.access_token, json=body)
    assert status == 400 and answer["error"]["code"] == "invalid_payload", answer
    assert answer["error"]["details"]["field"].split(".")[0] == field


async def test_a_gig_changes_only_the_fields_sent(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob)
    gig = await create_gig(api, alice, band["id"], startTime="20:00", notes="old notes")
    path = f"/api/gigs/{gig['id']}"
    await api.request(
        "PUT",
        f"/api/bands/{band['id']}/members/{bob.id}",
        token=alice.access_token,
        json={"role": "admin"},
    )
    status, changed = await api.request(
        "PUT", path, token=bob.access_token, json={"feeAmount": 99900, "notes": None}
    )
    assert status == 200, changed
    assert changed["feeAmount"] == 99900 and changed["notes"] is None
    assert changed["startTime"] == "20:00" and changed["venueName"] == gig["venueName"]
    status, answer = await api.request(
        "PUT", path, token=alice.access_token, json={"startTime": None, "endTime": "23:00"}
    )
    assert status == 400 and answer["error"]["details"]["field"] == "endTime"
    for body in ({"venueName": None}, {"bandId": band["id"]}, {"status": "paid"}):
        status, answer = await api.request("PUT", path, token=alice.access_token, json=body)
        assert status == 400, body
    status, same = await api.request("PUT", path, token=alice.access_token, json={})
    assert status == 200 and same == changed


async def test_the_status_follows_the_state_machine(api: Api) -> None:
    alice = await api.register("alice")
    band = await create_band(api, alice)
    gig = (await create_gig(api, alice, band["id"]))["id"]
    status, answer = await move(api, alice, gig, "played")
    assert status == 409 and answer["error"]["code"] == "conflict"
    assert answer["error"]["details"]["allowed"] == ["confirmed", "cancelled"]
    for step in ("confirmed", "played", "paid"):
        status, moved = await move(api, alice, gig, step)
        assert status == 200 and moved["status"] == step, moved
        GigView.model_validate(moved)
    status, again = await move(api, alice, gig, "paid")
    assert status == 200 and again == moved  # a retry changes nothing
    status, answer = await move(api, alice, gig, "cancelled")
    assert status == 409 and answer["error"]["details"]["allowed"] == []
    assert (await move(api, alice, gig, "lost"))[0] == 400
    other = (await create_gig(api, alice, band["id"]))["id"]
    await move(api, alice, other, "confirmed")
    status, cancelled = await move(api, alice, other, "cancelled")
    assert status == 200 and cancelled["status"] == "cancelled"
    status, answer = await move(api, alice, other, "confirmed")
    assert status == 409 and answer["error"]["details"]["allowed"] == []


async def test_gigs_filter_by_band_dates_and_status_and_page_by_date(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    rockers = (await create_band(api, alice, bob, name="Rockers"))["id"]
    jazz = (await create_band(api, bob, name="Jazz"))["id"]
    dates = ["2031-01-10", "2031-02-01", "2031-02-15", "2031-03-01"]
    mine = [await create_gig(api, alice, rockers, date=d) for d in dates]
    theirs = await create_gig(api, bob, jazz, date="2031-02-10")
    await move(api, alice, mine[1]["id"], "confirmed")

    async def listed(who: Account, query: str) -> list[str]:
        status, page = await api.request("GET", f"/api/gigs?{query}", token=who.access_token)
        assert status == 200, page
        return [g["id"] for g in page["items"]]

    assert await listed(alice, "") == [g["id"] for g in mine]  # Alice is not in Jazz
    assert theirs["id"] in await listed(bob, "")
    assert await listed(bob, f"bandId={jazz}") == [theirs["id"]]
    assert await listed(alice, "from=2031-02-01&to=2031-02-15") == [mine[1]["id"], mine[2]["id"]]
    assert await listed(alice, "status=confirmed") == [mine[1]["id"]]
    seen: list[str] = []
    query = f"bandId={rockers}&limit=3"
    while True:
        status, page = await api.request("GET", f"/api/gigs?{query}", token=bob.access_token)
        seen += [g["id"] for g in page["items"]]
        if page["nextCursor"] is None:
            break
        query = f"bandId={rockers}&limit=3&cursor={page['nextCursor']}"
    assert seen == [g["id"] for g in mine]
    for bad in (
        "from=2031-03-01&to=2031-02-01",
        "status=lost",
        "from=yesterday",
        "cursor=xyz",
        "sort=date",
    ):
        status, answer = await api.request("GET", f"/api/gigs?{bad}", token=alice.access_token)
        assert status == 400 and answer["error"]["code"] == "invalid_payload", bad


async def test_every_gig_change_reaches_the_members_on_the_other_node(two_hub_nodes) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob, stranger = await api.register_many("alice", "bob", "stranger")
    band = await create_band(api, alice, bob)
    bob_phone = await Phone(bob).connect(node_b.url)
    stranger_phone = await Phone(stranger).connect(node_b.url)
    try:
        gig = await create_gig(api, alice, band["id"], feeAmount=50000)

        async def pushed(change: str) -> dict[str, Any]:
            event = await bob_phone.next("gig:updated")
            GigUpdatedEvent.model_validate(event)
            assert event["change"] == change and event["gig"]["id"] == gig["id"], event
            return event["gig"]

        assert await pushed("created") == gig
        await api.request(
            "PUT", f"/api/gigs/{gig['id']}", token=alice.access_token, json={"feeAmount": 60000}
        )
        assert (await pushed("updated"))["feeAmount"] == 60000
        await move(api, alice, gig["id"], "confirmed")
        assert (await pushed("status_changed"))["status"] == "confirmed"
        await move(api, alice, gig["id"], "confirmed")  # no change, no push
        await move(api, alice, gig["id"], "cancelled")
        assert (await pushed("status_changed"))["status"] == "cancelled"
        assert stranger_phone.pending("gig:updated") == 0
    finally:
        await bob_phone.close()
        await stranger_phone.close()
