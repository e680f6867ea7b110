"""Calls across two hub nodes: the caller on node A, the callee's two devices on node B.

Each transition must reach the right devices exactly once, whichever node holds them, and
every token the hub mints is checked with livekit-api's own ``TokenVerifier``.
"""

from __future__ import annotations

import asyncio
import uuid

from hub.calls.views import CallHistoryPage
from hub.protocol.cursors import encode_cursor
from tests.support import Account, Api
from tests.support.bands import create_band
from tests.support.calls import (
    CHAT_KEY,
    CHAT_SECRET,
    CHAT_URL,
    MAIN_URL,
    CallPhone,
    assert_token,
    call_nodes,  # noqa: F401  (fixture)
    fake_livekit,  # noqa: F401  (fixture)
    no_event,
    seed_conversation,
)


async def _pair(api: Api, test_env) -> tuple[Account, Account]:
    alice, bob = await api.register_many("alice", "bob")
    await seed_conversation(test_env.database_url, alice, bob)
    return alice, bob


async def _history(api: Api, account: Account, **query: str) -> dict:
    path = "/api/calls" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    status, body = await api.request("GET", path, token=account.access_token)
    assert status == 200, body
    CallHistoryPage.model_validate(body)
    return body


async def test_accept_on_one_device_stops_the_other_and_hangup_ends_it_for_both(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob = await _pair(api, test_env)
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob, "phone").connect(node_b.url)
    bob_tablet = await CallPhone(bob, "tablet").connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "video"})
        assert ack["ok"], ack
        call = ack["call"]
        assert call["room"] == f"call-{call['id']}" and call["instance"] == "main"
        assert call["url"] == MAIN_URL and call["status"] == "ringing"
        assert_token(call["token"], identity=alice.id, name="alice", room=call["room"])
        for device in (bob_phone, bob_tablet):
            incoming = await device.next("call:incoming")
            assert incoming == {
                "call": {
                    "id": call["id"],
                    "from": alice.id,
                    "instance": "main",
                    "media": "video",
                    "expiresAt": call["expiresAt"],
                }
            }
        answer = await bob_phone.call("call:accept", {"call": call["id"]})
        assert answer["ok"] and answer["room"] == call["room"] and answer["url"] == MAIN_URL
        assert answer["token"] != call["token"]
        assert_token(answer["token"], identity=bob.id, name="bob", room=call["room"])
        assert await caller.next("call:accepted") == {"call": call["id"], "by": bob.id}
        assert await bob_tablet.next("call:answered_elsewhere") == {"call": call["id"]}
        late = await bob_tablet.call("call:accept", {"call": call["id"]})
        assert late["ok"] is False and late["error"]["code"] == "conflict"
        cancel = await caller.call("call:cancel", {"call": call["id"]})
        assert cancel["error"]["code"] == "conflict"

        hangup = await caller.call("call:hangup", {"call": call["id"]})
        assert hangup["ok"], hangup
        for device in (bob_phone, bob_tablet):
            ended = await device.next("call:ended")
            assert ended["call"] == call["id"] and ended["by"] == alice.id
            assert ended["duration"] >= 0
        await no_event(bob_phone, "call:answered_elsewhere", 0.5)
        assert bob_tablet.pending("call:answered_elsewhere") == 0
        assert caller.pending("call:ended") == 0 and caller.pending("call:accepted") == 0
        assert bob_phone.pending("call:ended") == 0 and bob_tablet.pending("call:ended") == 0
        gone = await bob_phone.call("call:hangup", {"call": call["id"]})
        assert gone["error"]["code"] == "not_found"
        for account in (alice, bob):
            (item,) = (await _history(api, account))["items"]
            assert item["id"] == call["id"] and item["outcome"] == "answered"
            assert item["from"] == alice.id and item["to"] == bob.id and "band" not in item
            assert item["instance"] == "main" and item["media"] == "video"
            assert item["startedAt"] <= item["answeredAt"] <= item["endedAt"]
    finally:
        for phone in (caller, bob_phone, bob_tablet):
            await phone.close()


async def test_two_devices_accepting_at_once_on_two_nodes_one_wins(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    alice, bob = await _pair(Api(node_a.url), test_env)
    caller = await CallPhone(alice).connect(node_a.url)
    on_a = await CallPhone(bob, "phone").connect(node_a.url)
    on_b = await CallPhone(bob, "tablet").connect(node_b.url)
    try:
        for _ in range(3):
            ack = await caller.call(
                "call:invite", {"to": bob.id, "instance": "main", "media": "audio"}
            )
            call_id = ack["call"]["id"]
            await on_a.next("call:incoming")
            await on_b.next("call:incoming")
            answers = await asyncio.gather(
                on_a.call("call:accept", {"call": call_id}),
                on_b.call("call:accept", {"call": call_id}),
            )
            winners = [a for a in answers if a["ok"]]
            assert len(winners) == 1, answers
            assert [a["error"]["code"] for a in answers if not a["ok"]] == ["conflict"]
            assert await caller.next("call:accepted") == {"call": call_id, "by": bob.id}
            loser = on_b if answers[0]["ok"] else on_a
            assert await loser.next("call:answered_elsewhere") == {"call": call_id}
            assert (await caller.call("call:hangup", {"call": call_id}))["ok"]
            await on_a.next("call:ended")
            await on_b.next("call:ended")
        assert caller.pending("call:accepted") == 0
        assert (
            on_a.pending("call:answered_elsewhere") + on_b.pending("call:answered_elsewhere") == 0
        )
    finally:
        for phone in (caller, on_a, on_b):
            await phone.close()


async def test_decline_reaches_the_caller_once_and_stops_the_other_device(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob = await _pair(api, test_env)
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob, "phone").connect(node_b.url)
    bob_tablet = await CallPhone(bob, "tablet").connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "chat", "media": "audio"})
        call_id = ack["call"]["id"]
        assert ack["call"]["url"] == CHAT_URL
        assert_token(
            ack["call"]["token"],
            identity=alice.id,
            name="alice",
            room=f"call-{call_id}",
            sources=["microphone"],
            key=CHAT_KEY,
            secret=CHAT_SECRET,
        )
        await bob_phone.next("call:incoming")
        await bob_tablet.next("call:incoming")
        declined = await bob_phone.call("call:decline", {"call": call_id})
        assert declined == {"ok": True}
        assert await caller.next("call:declined") == {"call": call_id, "by": bob.id}
        assert await bob_tablet.next("call:declined") == {"call": call_id, "by": bob.id}
        await no_event(caller, "call:declined")
        assert bob_phone.pending("call:declined") == 0 and bob_tablet.pending("call:declined") == 0
        late = await bob_tablet.call("call:accept", {"call": call_id})
        assert late["error"]["code"] == "not_found"
        (item,) = (await _history(api, alice))["items"]
        assert item["outcome"] == "declined" and item["answeredAt"] is None
        assert item["duration"] == 0
    finally:
        for phone in (caller, bob_phone, bob_tablet):
            await phone.close()


async def test_cancel_rings_off_every_device_once_and_only_the_caller_may(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob = await _pair(api, test_env)
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob, "phone").connect(node_b.url)
    bob_tablet = await CallPhone(bob, "tablet").connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "video"})
        call_id = ack["call"]["id"]
        await bob_phone.next("call:incoming")
        await bob_tablet.next("call:incoming")
        refused = await bob_phone.call("call:cancel", {"call": call_id})
        assert refused["error"]["code"] == "forbidden"
        assert (await caller.call("call:cancel", {"call": call_id})) == {"ok": True}
        for device in (bob_phone, bob_tablet):
            assert await device.next("call:cancelled") == {"call": call_id}
        await no_event(bob_phone, "call:cancelled")
        assert bob_tablet.pending("call:cancelled") == 0 and caller.pending("call:cancelled") == 0
        again = await caller.call("call:cancel", {"call": call_id})
        assert again["error"]["code"] == "not_found"
        (item,) = (await _history(api, bob))["items"]
        assert item["outcome"] == "cancelled" and item["to"] == bob.id
    finally:
        for phone in (caller, bob_phone, bob_tablet):
            await phone.close()


async def test_unanswered_call_is_missed_exactly_once_on_each_side(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes(ring_seconds=3)
    api = Api(node_a.url)
    alice, bob = await _pair(api, test_env)
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob, "phone").connect(node_b.url)
    bob_tablet = await CallPhone(bob, "tablet").connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "audio"})
        call_id = ack["call"]["id"]
        await bob_phone.next("call:incoming")
        await bob_tablet.next("call:incoming")
        for device in (caller, bob_phone, bob_tablet):
            assert await device.next("call:missed", timeout=10) == {"call": call_id}
        await no_event(caller, "call:missed", 3)
        assert bob_phone.pending("call:missed") == 0 and bob_tablet.pending("call:missed") == 0
        late = await bob_phone.call("call:accept", {"call": call_id})
        assert late["error"]["code"] == "not_found"
        (item,) = (await _history(api, bob))["items"]
        assert item["outcome"] == "missed"
        assert item["endedAt"] - item["startedAt"] >= 3000
    finally:
        for phone in (caller, bob_phone, bob_tablet):
            await phone.close()


async def test_callee_already_in_an_answered_call_is_busy_and_nobody_rings(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    await seed_conversation(test_env.database_url, alice, bob)
    await seed_conversation(test_env.database_url, carol, bob)
    alice_phone = await CallPhone(alice).connect(node_a.url)
    carol_phone = await CallPhone(carol).connect(node_a.url)
    carol_tablet = await CallPhone(carol, "tablet").connect(node_b.url)
    bob_phone = await CallPhone(bob, "phone").connect(node_b.url)
    bob_tablet = await CallPhone(bob, "tablet").connect(node_b.url)
    try:
        first = await alice_phone.call(
            "call:invite", {"to": bob.id, "instance": "main", "media": "audio"}
        )
        await bob_tablet.next("call:incoming")
        await bob_phone.next("call:incoming")
        assert (await bob_phone.call("call:accept", {"call": first["call"]["id"]}))["ok"]
        ack = await carol_phone.call(
            "call:invite", {"to": bob.id, "instance": "main", "media": "video"}
        )
        assert ack["ok"] and ack["call"]["status"] == "busy" and ack["call"]["token"] is None
        busy_id = ack["call"]["id"]
        for device in (carol_phone, carol_tablet):
            assert await device.next("call:busy") == {"call": busy_id}
        await no_event(bob_phone, "call:incoming", 1)
        assert bob_tablet.pending("call:incoming") == 0 and carol_phone.pending("call:busy") == 0
        assert carol_tablet.pending("call:busy") == 0
        items = (await _history(api, carol))["items"]
        assert [(i["id"], i["outcome"]) for i in items] == [(busy_id, "busy")]

        # Once that call ends, bob can be rung again.
        assert (await alice_phone.call("call:hangup", {"call": first["call"]["id"]}))["ok"]
        await bob_phone.next("call:ended")
        again = await carol_phone.call(
            "call:invite", {"to": bob.id, "instance": "main", "media": "video"}
        )
        assert again["call"]["status"] == "ringing"
        assert (await bob_tablet.next("call:incoming"))["call"]["id"] == again["call"]["id"]
    finally:
        for phone in (alice_phone, carol_phone, carol_tablet, bob_phone, bob_tablet):
            await phone.close()


async def test_band_call_rings_every_member_and_each_acceptor_gets_their_own_token(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob, carol, dave = await api.register_many("alice", "bob", "carol", "dave")
    band = (await create_band(api, alice, bob, carol, dave))["id"]
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob).connect(node_b.url)
    carol_phone = await CallPhone(carol).connect(node_a.url)
    dave_phone = await CallPhone(dave).connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"band": band, "instance": "main", "media": "video"})
        assert ack["ok"], ack
        call_id, room = ack["call"]["id"], ack["call"]["room"]
        for phone in (bob_phone, carol_phone, dave_phone):
            incoming = await phone.next("call:incoming")
            assert incoming["call"]["band"] == band and incoming["call"]["from"] == alice.id
        tokens = {}
        for phone, account in ((bob_phone, bob), (carol_phone, carol)):
            answer = await phone.call("call:accept", {"call": call_id})
            assert answer["ok"], answer
            assert_token(answer["token"], identity=account.id, name=account.name, room=room)
            tokens[account.id] = answer["token"]
            assert await caller.next("call:accepted") == {"call": call_id, "by": account.id}
        assert len(set(tokens.values())) == 2
        assert (await dave_phone.call("call:decline", {"call": call_id}))["ok"]
        assert await caller.next("call:declined") == {"call": call_id, "by": dave.id}

        assert (await bob_phone.call("call:hangup", {"call": call_id}))["ok"]
        for phone in (caller, carol_phone):
            assert await phone.next("call:left") == {"call": call_id, "by": bob.id}
        assert (await caller.call("call:hangup", {"call": call_id}))["ok"]
        assert await carol_phone.next("call:left") == {"call": call_id, "by": alice.id}
        assert (await carol_phone.call("call:hangup", {"call": call_id}))["ok"]
        for phone in (caller, bob_phone):
            ended = await phone.next("call:ended")
            assert ended["call"] == call_id and ended["by"] == carol.id
        assert dave_phone.pending("call:ended") == 0
        for account in (alice, bob, dave):
            (item,) = (await _history(api, account))["items"]
            assert item["band"] == band and "to" not in item and item["outcome"] == "answered"
    finally:
        for phone in (caller, bob_phone, carol_phone, dave_phone):
            await phone.close()


async def test_only_contacts_may_call_and_every_action_is_checked(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob = await _pair(api, test_env)
    stranger = await api.register("stranger")
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob).connect(node_b.url)
    stranger_phone = await CallPhone(stranger).connect(node_b.url)
    try:
        refused = await stranger_phone.call(
            "call:invite", {"to": alice.id, "instance": "main", "media": "audio"}
        )
        assert refused["error"]["code"] == "forbidden"
        band = (await create_band(api, alice, bob))["id"]
        # A non-member cannot tell a band from a missing one, as on every band route.
        for target in (band, str(uuid.uuid4())):
            hidden = await stranger_phone.call(
                "call:invite", {"band": target, "instance": "main", "media": "audio"}
            )
            assert hidden["error"] == {"code": "not_found", "message": "no such band"}, hidden
        unconfigured = await caller.call(
            "call:invite", {"to": bob.id, "instance": "meet", "media": "video"}
        )
        assert unconfigured["error"]["code"] == "not_configured"
        assert "LIVEKIT_MEET_URL" in unconfigured["error"]["message"]
        bad = await caller.call("call:invite", {"to": bob.id, "instance": "zoom", "media": "audio"})
        assert bad["error"]["code"] == "invalid_payload"
        both = await caller.call(
            "call:invite",
            {"to": bob.id, "band": str(uuid.uuid4()), "instance": "main", "media": "audio"},
        )
        assert both["error"]["code"] == "invalid_payload"
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "audio"})
        call_id = ack["call"]["id"]
        await bob_phone.next("call:incoming")
        for event in ("call:accept", "call:decline", "call:cancel", "call:hangup"):
            answer = await stranger_phone.call(event, {"call": call_id})
            assert answer["error"]["code"] == "forbidden", (event, answer)
        unknown = await bob_phone.call("call:accept", {"call": str(uuid.uuid4())})
        assert unknown["error"]["code"] == "not_found"
        assert (await caller.call("call:cancel", {"call": call_id}))["ok"]
        assert await bob_phone.next("call:cancelled") == {"call": call_id}
        assert stranger_phone.pending("call:incoming") == 0
        assert (await _history(api, stranger))["items"] == []
    finally:
        for phone in (caller, bob_phone, stranger_phone):
            await phone.close()


async def test_call_history_pages_newest_first(
    call_nodes,  # noqa: F811
    test_env,
):
    (node,) = await call_nodes(count=1)
    api = Api(node.url)
    alice, bob = await _pair(api, test_env)
    caller = await CallPhone(alice).connect(node.url)
    try:
        ids = []
        for _ in range(3):
            ack = await caller.call(
                "call:invite", {"to": bob.id, "instance": "main", "media": "audio"}
            )
            ids.append(ack["call"]["id"])
            assert (await caller.call("call:cancel", {"call": ids[-1]}))["ok"]
        first = await _history(api, bob, limit="2")
        assert [i["id"] for i in first["items"]] == ids[:0:-1]
        rest = await _history(api, bob, limit="2", cursor=first["nextCursor"])
        assert [i["id"] for i in rest["items"]] == ids[:1] and rest["nextCursor"] is None
        # The cursor is the one opaque codec of every list; alice's view of the same cursor
        # is her own history after that position (a cursor grants nothing).
        mine = await _history(api, alice, limit="2", cursor=first["nextCursor"])
        assert [i["id"] for i in mine["items"]] == ids[:1]
        not_ours = (
            "nonsense",
            f"1700000000000.{ids[0]}",  # the old ts.uuid form is no cursor of this list
            encode_cursor([str(2**63), ids[0]]),  # past a bigint: never ours
            encode_cursor(["-1", ids[0]]),
            encode_cursor(["soon", ids[0]]),
            encode_cursor(["1700000000000", "not-a-uuid"]),
            encode_cursor(["1700000000000"]),
        )
        for cursor in not_ours:
            status, body = await api.request(
                "GET", f"/api/calls?cursor={cursor}", token=alice.access_token
            )
            assert status == 400 and body["error"]["code"] == "invalid_payload", (cursor, body)
    finally:
        await caller.close()
