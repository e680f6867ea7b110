"""Bands over REST: owners, admins and members; strangers get 404, plain members 403; every
change pushed as ``band:updated``; removal ends band messages, typing and presence at once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hub.bands.views import BandPage, BandUpdatedEvent, BandView
from tests.support import Account, Api, Phone, seal
from tests.support.bands import create_band, invite, join_band, roles


@pytest.fixture
def api(hub_node) -> Api:  # type: ignore[no-untyped-def]
    return Api(hub_node.url)


async def get_band(api: Api, who: Account, band_id: str) -> tuple[int, Any]:
    return await api.request("GET", f"/api/bands/{band_id}", token=who.access_token)


async def set_role(api: Api, who: Account, band_id: str, user_id: str, role: str) -> Any:
    return await api.request(
        "PUT",
        f"/api/bands/{band_id}/members/{user_id}",
        token=who.access_token,
        json={"role": role},
    )


async def remove(api: Api, who: Account, band_id: str, user_id: str) -> tuple[int, Any]:
    return await api.request(
        "DELETE", f"/api/bands/{band_id}/members/{user_id}", token=who.access_token
    )


async def test_the_creator_owns_the_band_and_finds_it_in_their_list(api: Api) -> None:
    alice = await api.register("alice")
    status, band = await api.request(
        "POST",
        "/api/bands",
        token=alice.access_token,
        json={"name": "  The Rockers ", "genre": "rock"},
    )
    assert status == 201
    BandView.model_validate(band)
    assert band["name"] == "The Rockers" and band["genre"] == "rock"
    assert band["ownerId"] == alice.id and roles(band) == {alice.id: "owner"}
    assert band["calendarUrl"].startswith(
        api.base_url + f"/api/bands/{band['id']}/calendar.ics?token="
    )
    status, listed = await api.request("GET", "/api/bands", token=alice.access_token)
    assert status == 200
    BandPage.model_validate(listed)
    assert [b["id"] for b in listed["items"]] == [band["id"]] and listed["nextCursor"] is None
    status, again = await get_band(api, alice, band["id"])
    assert status == 200 and again == band


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "name"),
        ({"name": "   "}, 400, "name"),
        ({"name": 7}, 400, "name"),
        ({"name": "x" * 101}, 413, "name"),
        ({"name": "ok", "genre": "g" * 51}, 413, "genre"),
        ({"name": "ok", "ownerId": str(uuid.uuid4())}, 400, "ownerId"),
        ({"name": "nul\u0000"}, 400, None),
    ],
)
async def test_creating_a_band_with_a_bad_body_is_refused(
    api: Api, body: dict[str, Any], status: int, field: str | None
) -> None:
    alice = await api.register("alice")
    got, answer = await api.request("POST", "/api/bands", token=alice.access_token, json=body)
    assert got == status, answer
    assert answer["error"]["code"] in ("invalid_payload", "too_large")
    if field:
        assert answer["error"]["details"]["field"] == field
    assert (await api.request("POST", "/api/bands", json={"name": "x"}))[0] == 401


async def test_the_band_list_pages_with_an_opaque_cursor(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    names = ["Abba Tribute", "Beatles Tribute", "Cure Tribute"]
    ids = [(await create_band(api, alice, name=name))["id"] for name in reversed(names)]
    await create_band(api, bob, name="Not Alice's")
    seen: list[str] = []
    status, page = await api.request("GET", "/api/bands?limit=2", token=alice.access_token)
    assert status == 200 and len(page["items"]) == 2 and isinstance(page["nextCursor"], str)
    while True:
        seen += [b["name"] for b in page["items"]]
        if page["nextCursor"] is None:
            break
        status, page = await api.request(
            "GET", f"/api/bands?limit=2&cursor={page['nextCursor']}", token=alice.access_token
        )
        assert status == 200
    assert seen == names and len(ids) == 3
    for bad in ("garbage", "W10", "WyJhIiwibm90LWEtdXVpZCJd"):  # [] and ["a", "not-a-uuid"]
        status, body = await api.request(
            "GET", f"/api/bands?cursor={bad}", token=alice.access_token
        )
        assert status == 400 and body["error"]["details"]["field"] == "cursor", body
    status, body = await api.request("GET", "/api/bands?limit=0", token=alice.access_token)
    assert status == 400


async def test_a_stranger_gets_404_for_everything_about_a_band(api: Api) -> None:
    alice, bob, stranger = await api.register_many("alice", "bob", "stranger")
    band = await create_band(api, alice, bob)
    path = f"/api/bands/{band['id']}"
    token = stranger.access_token
    attempts = [
        ("GET", path, None),
        ("PUT", path, {"name": "Mine now"}),
        ("DELETE", path, None),
        ("POST", f"{path}/members", {"userId": stranger.id}),
        ("PUT", f"{path}/members/{bob.id}", {"role": "admin"}),
        ("DELETE", f"{path}/members/{bob.id}", None),
        ("POST", f"{path}/calendar-token", None),
    ]
    for method, route, body in attempts:
        status, answer = await api.request(method, route, token=token, json=body)
        assert status == 404 and answer["error"]["code"] == "not_found", (method, route, answer)
    # The same answer as for a band that does not exist at all.
    status, missing = await get_band(api, stranger, str(uuid.uuid4()))
    status2, hidden = await get_band(api, stranger, band["id"])
    assert status == status2 == 404 and missing == hidden
    assert (await get_band(api, alice, "not-a-uuid"))[0] == 400
    status, listed = await api.request("GET", "/api/bands", token=token)
    assert listed["items"] == []
    assert roles((await get_band(api, alice, band["id"]))[1]) == {
        alice.id: "owner",
        bob.id: "member",
    }


async def test_a_plain_member_reads_the_band_but_may_not_manage_it(api: Api) -> None:
    alice, bob, carol, dave = await api.register_many("alice", "bob", "carol", "dave")
    band = await create_band(api, alice, bob, carol)
    path = f"/api/bands/{band['id']}"
    status, seen = await get_band(api, bob, band["id"])
    assert status == 200 and "calendarUrl" not in seen
    assert roles(seen) == roles(band)
    attempts = [
        ("PUT", path, {"name": "Bob's band"}),
        ("DELETE", path, None),
        ("POST", f"{path}/members", {"userId": dave.id}),
        ("PUT", f"{path}/members/{carol.id}", {"role": "admin"}),
        ("PUT", f"{path}/members/{bob.id}", {"role": "owner"}),
        ("DELETE", f"{path}/members/{carol.id}", None),
        ("DELETE", f"{path}/members/{alice.id}", None),
        ("POST", f"{path}/calendar-token", None),
    ]
    for method, route, body in attempts:
        status, answer = await api.request(method, route, token=bob.access_token, json=body)
        assert status == 403 and answer["error"]["code"] == "forbidden", (method, route, answer)
    assert (await get_band(api, alice, band["id"]))[1] == band


async def test_owner_and_admins_change_the_band_field_by_field(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob, genre="rock")
    path = f"/api/bands/{band['id']}"
    assert (await set_role(api, alice, band["id"], bob.id, "admin"))[0] == 200
    status, changed = await api.request("PUT", path, token=bob.access_token, json={"name": "New"})
    assert status == 200 and changed["name"] == "New" and changed["genre"] == "rock"
    assert "calendarUrl" in changed  # admins see it too
    status, changed = await api.request("PUT", path, token=alice.access_token, json={"genre": None})
    assert status == 200 and changed["name"] == "New" and changed["genre"] is None
    status, same = await api.request("PUT", path, token=alice.access_token, json={})
    assert status == 200 and same == changed
    for body, code in (({"name": None}, 400), ({"name": ""}, 400), ({"genre": 3}, 400)):
        status, answer = await api.request("PUT", path, token=alice.access_token, json=body)
        assert status == code and answer["error"]["details"]["field"] in ("name", "genre")


async def test_members_are_invited_once_and_only_as_admin_or_member(api: Api) -> None:
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = await create_band(api, alice, bob)
    members = f"/api/bands/{band['id']}/members"
    token = alice.access_token
    status, answer = await api.request("POST", members, token=token, json={"userId": bob.id})
    assert status == 409 and answer["error"]["code"] == "conflict"
    status, answer = await api.request(
        "POST", members, token=token, json={"userId": str(uuid.uuid4())}
    )
    assert status == 404 and answer["error"]["code"] == "not_found"
    for body in (
        {"userId": carol.id, "role": "owner"},
        {"userId": carol.id, "role": "boss"},
        {"userId": "nope"},
        {"role": "member"},
    ):
        status, answer = await api.request("POST", members, token=token, json=body)
        assert status == 400 and answer["error"]["code"] == "invalid_payload", body
    status, answer = await api.request(
        "POST", members, token=token, json={"userId": carol.id, "role": "admin"}
    )
    assert status == 201 and answer["invitation"]["role"] == "admin", answer
    assert roles((await get_band(api, alice, band["id"]))[1]) == roles(band)  # unchanged
    status, again = await api.request("POST", members, token=token, json={"userId": carol.id})
    assert status == 409 and again["error"]["code"] == "conflict"  # already invited
    assert (await get_band(api, carol, band["id"]))[0] == 404  # nothing until accepting
    invitation = answer["invitation"]["id"]
    status, joined = await api.request(
        "POST", f"/api/invitations/{invitation}/accept", token=carol.access_token
    )
    assert status == 200 and roles(joined)[carol.id] == "admin"
    status, listed = await api.request("GET", "/api/bands", token=carol.access_token)
    assert [b["id"] for b in listed["items"]] == [band["id"]]
    assert "calendarUrl" in listed["items"][0]


async def test_ownership_is_handed_over_only_by_the_owner(api: Api) -> None:
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = await create_band(api, alice, bob, carol)
    band_id = band["id"]
    status, band = await set_role(api, alice, band_id, carol.id, "admin")
    assert status == 200 and roles(band)[carol.id] == "admin"
    refusals = [
        (carol, bob.id, "owner", "forbidden"),  # an admin may not make someone owner
        (carol, alice.id, "member", "forbidden"),  # nor touch the owner's role
        (alice, alice.id, "admin", "conflict"),  # the owner steps down only by a handover
        (alice, str(uuid.uuid4()), "admin", "not_found"),
        (alice, bob.id, "chief", "invalid_payload"),
    ]
    for who, target, role, code in refusals:
        _, answer = await set_role(api, who, band_id, target, role)
        assert answer["error"]["code"] == code, (who.name, target, role, answer)
    status, band = await set_role(api, alice, band_id, bob.id, "owner")
    assert status == 200, band
    assert band["ownerId"] == bob.id
    assert roles(band) == {alice.id: "admin", bob.id: "owner", carol.id: "admin"}
    assert (await api.request("DELETE", f"/api/bands/{band_id}", token=alice.access_token))[
        0
    ] == 403
    status, band = await set_role(api, carol, band_id, alice.id, "member")
    assert status == 200 and roles(band)[alice.id] == "member"


async def test_the_owner_cannot_leave_but_anyone_else_can(api: Api) -> None:
    alice, bob, carol, dave = await api.register_many("alice", "bob", "carol", "dave")
    band = await create_band(api, alice, bob, carol, dave)
    band_id = band["id"]
    status, answer = await remove(api, alice, band_id, alice.id)
    assert status == 409 and "hand ownership" in answer["error"]["message"]
    assert (await remove(api, bob, band_id, bob.id))[0] == 204  # leaving
    assert (await get_band(api, bob, band_id))[0] == 404
    assert (await remove(api, bob, band_id, carol.id))[0] == 404  # no longer a member
    await set_role(api, alice, band_id, carol.id, "admin")
    assert (await remove(api, carol, band_id, alice.id))[0] == 403  # nobody removes the owner
    assert (await remove(api, carol, band_id, dave.id))[0] == 204
    assert (await remove(api, carol, band_id, dave.id))[0] == 404  # already gone
    status, band = await get_band(api, alice, band_id)
    assert roles(band) == {alice.id: "owner", carol.id: "admin"}


async def test_only_the_owner_deletes_the_band(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    band = await create_band(api, alice, bob)
    path = f"/api/bands/{band['id']}"
    await set_role(api, alice, band["id"], bob.id, "admin")
    assert (await api.request("DELETE", path, token=bob.access_token))[0] == 403
    assert (await api.request("DELETE", path, token=alice.access_token))[0] == 204
    for who in (alice, bob):
        assert (await get_band(api, who, band["id"]))[0] == 404
        assert (await api.request("GET", "/api/bands", token=who.access_token))[1]["items"] == []
    assert (await api.request("DELETE", path, token=alice.access_token))[0] == 404


async def test_every_band_change_reaches_the_members_on_the_other_node(two_hub_nodes) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    bob_phone = await Phone(bob).connect(node_b.url)
    alice_phone = await Phone(alice).connect(node_b.url)
    try:

        async def pushed(phone: Phone, change: str) -> dict[str, Any]:
            event = await phone.next("band:updated")
            BandUpdatedEvent.model_validate(event)
            assert event["change"] == change, event
            assert "calendarUrl" not in event["band"]  # the secret URL is never pushed
            return event

        band = await create_band(api, alice)
        assert (await pushed(alice_phone, "created"))["band"]["id"] == band["id"]
        invitation = await invite(api, alice, band["id"], bob)
        assert (await bob_phone.next("band:invited"))["invitation"] == invitation
        assert bob_phone.pending("band:updated") == 0  # invited is not a member yet
        await api.request(
            "POST", f"/api/invitations/{invitation['id']}/accept", token=bob.access_token
        )
        for phone in (alice_phone, bob_phone):
            event = await pushed(phone, "member_added")
            assert event["userId"] == bob.id and bob.id in roles(event["band"])
        await api.request(
            "PUT", f"/api/bands/{band['id']}", token=alice.access_token, json={"name": "Renamed"}
        )
        assert (await pushed(bob_phone, "updated"))["band"]["name"] == "Renamed"
        await set_role(api, alice, band["id"], bob.id, "admin")
        assert roles((await pushed(bob_phone, "role_changed"))["band"])[bob.id] == "admin"
        await join_band(Api(node_b.url), bob, band["id"], carol)
        await pushed(bob_phone, "member_added")
        await remove(api, alice, band["id"], bob.id)
        event = await pushed(bob_phone, "member_removed")  # the removed member hears it too
        assert event["userId"] == bob.id and bob.id not in roles(event["band"])
        changes = [(await alice_phone.next("band:updated"))["change"] for _ in range(4)]
        assert changes == ["updated", "role_changed", "member_added", "member_removed"]
        await api.request("DELETE", f"/api/bands/{band['id']}", token=alice.access_token)
        assert (await pushed(alice_phone, "deleted"))["band"]["id"] == band["id"]
        assert bob_phone.pending("band:updated") == 0  # no longer a member: not told
    finally:
        await bob_phone.close()
        await alice_phone.close()


async def test_a_removed_member_gets_no_more_band_messages_or_typing(hub_node) -> None:
    api = Api(hub_node.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = (await create_band(api, alice, bob, carol))["id"]
    phones = {a.id: await Phone(a).connect(hub_node.url) for a in (alice, bob, carol)}
    alice_phone, bob_phone, carol_phone = phones[alice.id], phones[bob.id], phones[carol.id]
    try:
        assert (await remove(api, alice, band, carol.id))[0] == 204
        old_set = [{"to": m.id, **seal(alice, m, "hi all")} for m in (bob, carol)]
        ack = await alice_phone.call(
            "message:send", {"id": str(uuid.uuid4()), "band": band, "envelopes": old_set}
        )
        assert ack["ok"] is False and ack["error"]["code"] == "conflict"
        assert ack["error"]["details"] == {"missing": [], "extra": [carol.id]}
        ack = await alice_phone.call(
            "message:send",
            {"id": str(uuid.uuid4()), "band": band, "envelopes": [old_set[0]]},
        )
        assert ack["ok"], ack
        assert (await bob_phone.next("message:new"))["band"] == band
        ack = await carol_phone.call(
            "message:send",
            {
                "id": str(uuid.uuid4()),
                "band": band,
                "envelopes": [{"to": m.id, **seal(carol, m, "still here?")} for m in (alice, bob)],
            },
        )
        assert ack["ok"] is False and ack["error"]["code"] == "not_found"
        typing = await carol_phone.call("typing", {"band": band, "state": "start"})
        assert typing["ok"] is False and typing["error"]["code"] == "not_found"
        assert (await bob_phone.call("typing", {"band": band, "state": "start"}))["ok"]
        assert (await alice_phone.next("typing"))["from"] == bob.id
        sync = await carol_phone.call("message:sync", {"after": 0})
        assert sync["messages"] == [] and carol_phone.pending("message:new") == 0
        assert carol_phone.pending("typing") == 0
    finally:
        for phone in phones.values():
            await phone.close()


async def test_removal_ends_presence_both_ways_on_every_node(two_hub_nodes) -> None:
    """Alice stops seeing Bob and Bob stops seeing the band, at once, on both nodes, while
    those who still share something (Alice's other device, Bob's direct contact) go on."""
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob, carol, dave = await api.register_many("alice", "bob", "carol", "dave")
    band = (await create_band(api, alice, bob, carol))["id"]
    status, _ = await api.request(
        "POST",
        "/api/messages",
        token=dave.access_token,
        json={"id": str(uuid.uuid4()), "to": bob.id, **seal(dave, bob, "hi bob")},
    )
    assert status == 201
    status, _ = await api.request(
        "POST", f"/api/messages/requests/{dave.id}/accept", token=bob.access_token
    )
    assert status == 204
    alice_a = await Phone(alice, "alice-a").connect(node_a.url)
    alice_b = await Phone(alice, "alice-b").connect(node_b.url)
    bob_b = await Phone(bob, "bob-b").connect(node_b.url)
    dave_a = await Phone(dave, "dave-a").connect(node_a.url)
    carol_a = Phone(carol, "carol-a")
    try:
        for phone, users in (
            (alice_a, [bob.id, carol.id]),
            (alice_b, [carol.id]),
            (bob_b, [carol.id, dave.id]),
            (dave_a, [bob.id]),
        ):
            ack = await phone.call("presence:subscribe", {"users": users})
            assert ack["ok"], ack
        assert (await remove(api, alice, band, bob.id))[0] == 204

        # Carol comes online: Alice hears it on both nodes, Bob (node B) does not.
        await carol_a.connect(node_a.url)
        assert (await alice_a.next("presence"))["userId"] == carol.id
        assert (await alice_b.next("presence"))["userId"] == carol.id  # node B has pushed it
        assert (await bob_b.call("presence:unsubscribe", {"users": [dave.id]}))["ok"]
        assert bob_b.pending("presence") == 0  # the round trip above came after any push
        again = await bob_b.call("presence:subscribe", {"users": [carol.id]})
        assert again["ok"] is False and again["error"]["code"] == "forbidden"

        # Bob goes offline: Dave (a direct contact) hears it on node A, Alice does not.
        await bob_b.close()
        offline = await dave_a.next("presence")
        assert offline["userId"] == bob.id and offline["status"] == "offline"
        assert (await alice_a.call("presence:unsubscribe", {"users": [dave.id]}))["ok"]
        assert alice_a.pending("presence") == 0
        again = await alice_a.call("presence:subscribe", {"users": [bob.id]})
        assert again["ok"] is False and again["error"]["code"] == "forbidden"
    finally:
        for phone in (alice_a, alice_b, bob_b, dave_a, carol_a):
            await phone.close()


async def test_people_who_share_another_band_still_see_each_other(hub_node) -> None:
    api = Api(hub_node.url)
    alice, bob = await api.register_many("alice", "bob")
    first = (await create_band(api, alice, bob, name="First"))["id"]
    await create_band(api, alice, bob, name="Second")
    bob_phone = await Phone(bob).connect(hub_node.url)
    alice_phone = await Phone(alice).connect(hub_node.url)
    try:
        assert (await bob_phone.call("presence:subscribe", {"users": [alice.id]}))["ok"]
        assert (await remove(api, alice, first, bob.id))[0] == 204
        await alice_phone.close()
        offline = await bob_phone.next("presence")
        assert offline["userId"] == alice.id and offline["status"] == "offline"
    finally:
        await bob_phone.close()
