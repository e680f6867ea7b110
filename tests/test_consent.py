"""Consent over two hub nodes: a stranger's direct message is only a request until its
recipient accepts it (or replies); a decline or a block stops everything, and the blocked
side's answers are word for word a non-contact's."""

from __future__ import annotations

import uuid
from typing import Any

from hub.consent.views import BlockList, MessageRequestList
from tests.support import Account, Api, seal
from tests.support.bands import create_band, make_contacts
from tests.support.calls import (
    CallPhone,
    StartNodes,
    call_nodes,  # noqa: F401  (fixture)
    fake_livekit,  # noqa: F401  (fixture)
    no_event,
)


def direct(sender: Account, to: Account, text: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "to": to.id, **seal(sender, to, text)}


async def requests_of(api: Api, who: Account) -> list[dict[str, Any]]:
    status, page = await api.request("GET", "/api/messages/requests", token=who.access_token)
    assert status == 200, page
    MessageRequestList.model_validate(page)
    return list(page["items"])


async def answer(api: Api, who: Account, requester: Account, verb: str) -> int:
    status, _ = await api.request(
        "POST", f"/api/messages/requests/{requester.id}/{verb}", token=who.access_token
    )
    return status


async def reach_attempts(phone: CallPhone, target: Account) -> dict[str, Any]:
    """What a phone gets when it tries to see, type to and call ``target``."""
    return {
        "presence": await phone.call("presence:subscribe", {"users": [target.id]}),
        "typing": await phone.call("typing", {"to": target.id, "state": "start"}),
        "call": await phone.call(
            "call:invite", {"to": target.id, "instance": "main", "media": "audio"}
        ),
    }


def refused(attempts: dict[str, Any]) -> None:
    for name, ack in attempts.items():
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", (name, ack)


async def test_a_stranger_gets_only_a_request_until_it_is_accepted(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    alice_phone = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob).connect(node_b.url)
    try:
        first = direct(alice, bob, "loved your gig")
        assert (await alice_phone.call("message:send", first))["ok"] is True
        new = await bob_phone.next("message:new")
        assert new["id"] == first["id"] and new["request"] is True, new
        synced = await bob_phone.call("message:sync", {"after": 0})
        assert [m.get("request") for m in synced["messages"]] == [True]
        own = await alice_phone.call("message:sync", {"after": 0})
        assert "request" not in own["messages"][0]  # the sender's copy is a plain one
        assert await requests_of(api, bob) == [
            {"userId": alice.id, "name": alice.name, "firstMessageAt": new["ts"], "messages": 1}
        ]

        # Until bob accepts: no presence, typing, calls or receipts, at most 3 messages.
        refused(await reach_attempts(alice_phone, bob))
        assert (await bob_phone.call("message:read", {"ids": [first["id"]]}))["ok"] is True
        for text in ("second", "third"):
            assert (await alice_phone.call("message:send", direct(alice, bob, text)))["ok"]
        fourth = await alice_phone.call("message:send", direct(alice, bob, "fourth"))
        assert fourth["ok"] is False and fourth["error"]["code"] == "forbidden", fourth
        assert "pending" in fourth["error"]["message"]
        await no_event(alice_phone, "message:receipt", wait=1.0)
        assert (await requests_of(api, bob))[0]["messages"] == 3

        assert await answer(api, bob, alice, "accept") == 204
        assert await alice_phone.next("contact:accepted") == {"userId": bob.id}
        assert await requests_of(api, bob) == []
        assert await answer(api, bob, alice, "accept") == 404  # nothing pending any more

        # Now everything flows, across the two nodes.
        watch = await alice_phone.call("presence:subscribe", {"users": [bob.id]})
        assert watch["ok"] and watch["presence"][0]["status"] == "online", watch
        typing = await alice_phone.call("typing", {"to": bob.id, "state": "start"})
        assert typing == {"ok": True, "relayed": True}
        fourth_again = direct(alice, bob, "fourth, again")
        assert (await alice_phone.call("message:send", fourth_again))["ok"] is True
        for _ in range(3):
            message = await bob_phone.next("message:new")
        assert message["id"] == fourth_again["id"] and "request" not in message
        assert (await bob_phone.call("message:read", {"ids": [fourth_again["id"]]}))["ok"]
        receipt = await alice_phone.next("message:receipt")
        assert receipt["ids"] == [fourth_again["id"]] and receipt["by"] == bob.id
        ring = await alice_phone.call(
            "call:invite", {"to": bob.id, "instance": "main", "media": "audio"}
        )
        assert ring["ok"] and ring["call"]["status"] == "ringing", ring
        assert (await bob_phone.next("call:incoming"))["call"]["id"] == ring["call"]["id"]
        assert (await alice_phone.call("call:cancel", {"call": ring["call"]["id"]}))["ok"]
    finally:
        await alice_phone.close()
        await bob_phone.close()


async def test_a_reply_accepts_and_a_decline_refuses_what_follows(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    carol, dave, erin = await api.register_many("carol", "dave", "erin")
    carol_phone = await CallPhone(carol).connect(node_a.url)
    dave_phone = await CallPhone(dave).connect(node_b.url)
    erin_phone = await CallPhone(erin).connect(node_a.url)
    try:
        assert (await carol_phone.call("message:send", direct(carol, dave, "hi")))["ok"]
        assert (await dave_phone.next("message:new"))["request"] is True
        reply = direct(dave, carol, "hi back")
        assert (await dave_phone.call("message:send", reply))["ok"] is True
        assert await carol_phone.next("contact:accepted") == {"userId": dave.id}
        back = await carol_phone.next("message:new")
        assert back["id"] == reply["id"] and "request" not in back
        assert await requests_of(api, dave) == []
        assert (await carol_phone.call("presence:subscribe", {"users": [dave.id]}))["ok"]

        assert (await erin_phone.call("message:send", direct(erin, dave, "buy my merch")))["ok"]
        assert await answer(api, dave, erin, "decline") == 204
        assert await requests_of(api, dave) == []
        assert await answer(api, dave, erin, "accept") == 404
        after = await erin_phone.call("message:send", direct(erin, dave, "hello?"))
        assert after["ok"] is False and after["error"]["code"] == "forbidden", after
        refused(await reach_attempts(erin_phone, dave))
        await no_event(erin_phone, "contact:accepted", wait=0.5)  # the requester is not told
    finally:
        for phone in (carol_phone, dave_phone, erin_phone):
            await phone.close()


async def test_a_block_stops_everything_both_ways_and_looks_like_any_refusal(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob, stranger, decliner = await api.register_many("alice", "bob", "stranger", "decliner")
    await make_contacts(api, alice, bob)
    alice_phone = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob).connect(node_b.url)
    stranger_phone = await CallPhone(stranger).connect(node_a.url)
    laptop = CallPhone(bob, "bob-laptop")
    try:
        assert (await alice_phone.call("presence:subscribe", {"users": [bob.id]}))["ok"]
        ring = await alice_phone.call(
            "call:invite", {"to": bob.id, "instance": "main", "media": "video"}
        )
        assert ring["ok"] and ring["call"]["status"] == "ringing", ring
        await bob_phone.next("call:incoming")

        status, _ = await api.request("PUT", f"/api/blocks/{alice.id}", token=bob.access_token)
        assert status == 204
        # The ringing call is cancelled through the normal path, on both nodes.
        assert (await bob_phone.next("call:cancelled"))["call"] == ring["call"]["id"]
        assert (await alice_phone.next("call:cancelled"))["call"] == ring["call"]["id"]
        # Alice's watch of bob is gone on every node: bob's laptop coming online is not told.
        await laptop.connect(node_a.url)
        await no_event(alice_phone, "presence", wait=1.5)

        # Alice's answers are exactly a stranger's (the user ids aside).
        blocked = await reach_attempts(alice_phone, bob)
        strange = await reach_attempts(stranger_phone, bob)
        refused(blocked)
        assert blocked == strange
        # Her message is refused as a declined requester's is.
        assert (
            await api.request(
                "POST",
                "/api/messages",
                token=decliner.access_token,
                json=direct(decliner, bob, "hi"),
            )
        )[0] == 201
        assert await answer(api, bob, decliner, "decline") == 204
        _, declined = await api.request(
            "POST", "/api/messages", token=decliner.access_token, json=direct(decliner, bob, "?")
        )
        _, blocked_dm = await api.request(
            "POST", "/api/messages", token=alice.access_token, json=direct(alice, bob, "?")
        )
        assert blocked_dm == declined and blocked_dm["error"]["code"] == "forbidden"
        # Both ways: bob reaches nothing of alice either.
        refused(await reach_attempts(bob_phone, alice))
        back = await bob_phone.call("message:send", direct(bob, alice, "sorry"))
        assert back["ok"] is False and back["error"]["code"] == "forbidden"
        # No band invitation between them.
        other = await create_band(api, bob, name="Bob's other band")
        status, invited = await api.request(
            "POST",
            f"/api/bands/{other['id']}/members",
            token=bob.access_token,
            json={"userId": alice.id},
        )
        assert status == 403 and invited["error"]["code"] == "forbidden", invited
        # Band conversations are not filtered: both are still members of the band.
        status, listed = await api.request("GET", "/api/blocks", token=bob.access_token)
        assert status == 200 and [b["userId"] for b in listed["items"]] == [alice.id]
        BlockList.model_validate(listed)
        assert (await api.request("GET", "/api/blocks", token=alice.access_token))[1] == {
            "items": []
        }  # the blocked user is never told

        status, _ = await api.request("DELETE", f"/api/blocks/{alice.id}", token=bob.access_token)
        assert status == 204
        again = await alice_phone.call("presence:subscribe", {"users": [bob.id]})
        assert again["ok"] is True, again  # band-mates again
        for verb, code in (("PUT", 400), ("PUT", 204), ("DELETE", 204)):
            target = bob.id if code == 400 else str(uuid.uuid4()) if verb == "DELETE" else alice.id
            status, _ = await api.request(verb, f"/api/blocks/{target}", token=bob.access_token)
            assert status == code, (verb, target, status)
        unknown = str(uuid.uuid4())
        status, _ = await api.request("PUT", f"/api/blocks/{unknown}", token=bob.access_token)
        assert status == 404
    finally:
        for phone in (alice_phone, bob_phone, stranger_phone, laptop):
            await phone.close()


async def test_a_sender_opens_at_most_requests_per_day(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    (node,) = await call_nodes(count=1, REQUESTS_PER_DAY="2")
    api = Api(node.url)
    spammer, *targets = await api.register_many("spammer", "t1", "t2", "t3")
    for target, expected in zip(targets, (201, 201, 429), strict=True):
        status, body = await api.request(
            "POST", "/api/messages", token=spammer.access_token, json=direct(spammer, target, "x")
        )
        assert status == expected, body
    assert body["error"]["code"] == "rate_limited"
    # Contacts are not requests: a band-mate is still reachable.
    mate = await api.register("mate")
    await make_contacts(api, spammer, mate)
    status, _ = await api.request(
        "POST", "/api/messages", token=spammer.access_token, json=direct(spammer, mate, "hey")
    )
    assert status == 201
