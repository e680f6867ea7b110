"""End-to-end-encrypted messaging across two hub nodes, with real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from hub.messaging.views import MarkedView, SentMessageView, SyncPageView, TypingAckView
from hub.protocol.models import View
from tests.support import Api, Phone, open_box, seal
from tests.support.bands import make_contacts


def answered(ack: Any, model: type[View]) -> Any:
    """An ``ok`` ack whose fields are exactly its model's (the ack's shape is checked)."""
    assert ack["ok"] is True, ack
    model.model_validate({k: v for k, v in ack.items() if k != "ok"})
    return ack


@pytest.fixture
def api_a(two_hub_nodes):  # type: ignore[no-untyped-def]
    return Api(two_hub_nodes[0].url)


async def test_message_from_node_a_reaches_recipient_on_node_b(two_hub_nodes, api_a):
    node_a, node_b = two_hub_nodes
    alice, bob = await api_a.register("alice"), await api_a.register("bob")
    alice_phone = await Phone(alice, "alice-phone").connect(node_a.url)
    alice_tablet = await Phone(alice, "alice-tablet").connect(node_b.url)
    bob_phone = await Phone(bob, "bob-phone").connect(node_b.url)
    message_id = str(uuid.uuid4())
    try:
        ack = await alice_phone.call(
            "message:send", {"id": message_id, "to": bob.id, **seal(alice, bob, "soundcheck at 6")}
        )
        answered(ack, SentMessageView)
        assert ack["id"] == message_id and isinstance(ack["ts"], int)
        received = await bob_phone.next("message:new")
        assert received["id"] == message_id
        assert received["from"] == alice.id and received["to"] == bob.id
        assert received["seq"] == 1 and received["ts"] == ack["ts"]
        assert open_box(bob, alice.public_key_b64, received) == "soundcheck at 6"
        echo = await alice_tablet.next("message:new")
        assert echo["id"] == message_id and echo["seq"] == 1 and echo["peer"] == bob.id
        assert open_box(alice, bob.public_key_b64, echo) == "soundcheck at 6"
        await asyncio.sleep(0.3)  # give a wrong echo to the sending device time to show up
        assert alice_phone.pending("message:new") == 0
    finally:
        for phone in (alice_phone, alice_tablet, bob_phone):
            await phone.close()


async def test_resend_with_same_client_id_is_stored_once(two_hub_nodes, api_a):
    node_a, node_b = two_hub_nodes
    alice, bob = await api_a.register("alice"), await api_a.register("bob")
    alice_phone = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "once")}
        first = await alice_phone.call("message:send", payload)
        second = await alice_phone.call("message:send", payload)
        assert first == second and first["ok"]
        await bob_phone.next("message:new")
        follow_up = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "twice?")}
        await alice_phone.call("message:send", follow_up)
        after = await bob_phone.next("message:new")
        assert after["id"] == follow_up["id"] and after["seq"] == 2  # the resend took no seq
        sync = await bob_phone.call("message:sync", {"after": 0})
        assert [m["id"] for m in sync["messages"]] == [payload["id"], follow_up["id"]]
    finally:
        await alice_phone.close()
        await bob_phone.close()


async def test_same_id_for_another_recipient_is_a_conflict(two_hub_nodes, api_a):
    node_a, _ = two_hub_nodes
    alice, bob, carol = await api_a.register_many("alice", "bob", "carol")
    phone = await Phone(alice).connect(node_a.url)
    try:
        message_id = str(uuid.uuid4())
        assert (
            await phone.call(
                "message:send", {"id": message_id, "to": bob.id, **seal(alice, bob, "x")}
            )
        )["ok"]
        ack = await phone.call(
            "message:send", {"id": message_id, "to": carol.id, **seal(alice, carol, "x")}
        )
        assert ack["ok"] is False and ack["error"]["code"] == "conflict"
    finally:
        await phone.close()


async def test_offline_recipient_catches_up_with_sync_in_pages(two_hub_nodes, api_a):
    node_a, node_b = two_hub_nodes
    alice, bob = await api_a.register("alice"), await api_a.register("bob")
    await make_contacts(api_a, alice, bob)  # more than a request's 3 messages
    alice_phone = await Phone(alice).connect(node_a.url)
    sent = []
    try:
        for i in range(5):
            payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, f"take {i}")}
            assert (await alice_phone.call("message:send", payload))["ok"]
            sent.append(payload["id"])
    finally:
        await alice_phone.close()
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        first = answered(
            await bob_phone.call("message:sync", {"after": 0, "limit": 3}), SyncPageView
        )
        assert first["more"] is True
        assert [m["seq"] for m in first["messages"]] == [1, 2, 3]
        rest = await bob_phone.call("message:sync", {"after": 3, "limit": 3})
        assert rest["more"] is False and [m["seq"] for m in rest["messages"]] == [4, 5]
        texts = [
            open_box(bob, alice.public_key_b64, m) for m in first["messages"] + rest["messages"]
        ]
        assert texts == [f"take {i}" for i in range(5)]
        assert [m["id"] for m in first["messages"] + rest["messages"]] == sent
    finally:
        await bob_phone.close()


async def test_receipts_reach_the_sender_on_the_other_node(two_hub_nodes, api_a):
    node_a, node_b = two_hub_nodes
    alice, bob = await api_a.register("alice"), await api_a.register("bob")
    await make_contacts(api_a, alice, bob)  # receipts flow between contacts only
    alice_phone = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob, "bob-phone").connect(node_b.url)
    bob_laptop = await Phone(bob, "bob-laptop").connect(node_a.url)
    try:
        message_id = str(uuid.uuid4())
        await alice_phone.call(
            "message:send", {"id": message_id, "to": bob.id, **seal(alice, bob, "hi")}
        )
        await bob_phone.next("message:new")
        mixed = await bob_phone.call("message:delivered", {"ids": [message_id, str(uuid.uuid4())]})
        assert mixed["ok"] is False and mixed["error"]["code"] == "forbidden"  # and marks nothing:
        delivered = answered(
            await bob_phone.call("message:delivered", {"ids": [message_id]}), MarkedView
        )
        receipt = await alice_phone.next("message:receipt")
        assert receipt == {
            "ids": [message_id],
            "by": bob.id,
            "status": "delivered",
            "ts": delivered["ts"],
        }
        read = answered(await bob_phone.call("message:read", {"ids": [message_id]}), MarkedView)
        receipt = await alice_phone.next("message:receipt")
        assert receipt["status"] == "read" and receipt["ts"] == read["ts"]
        mirrored = [await bob_laptop.next("message:receipt") for _ in range(2)]
        assert [r["status"] for r in mirrored] == ["delivered", "read"]
        own = await alice_phone.call("message:read", {"ids": [message_id]})
        assert own["ok"] is False and own["error"]["code"] == "forbidden"
    finally:
        for phone in (alice_phone, bob_phone, bob_laptop):
            await phone.close()


async def test_typing_is_relayed_to_the_other_side_only(two_hub_nodes, api_a):
    node_a, node_b = two_hub_nodes
    alice, bob, stranger = await api_a.register_many("alice", "bob", "stranger")
    alice_phone = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        refused = await alice_phone.call("typing", {"to": bob.id, "state": "start"})
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
        await alice_phone.call(
            "message:send", {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "yo")}
        )
        # Still a request: no typing until bob accepts it.
        refused = await alice_phone.call("typing", {"to": bob.id, "state": "start"})
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
        status, _ = await api_a.request(
            "POST", f"/api/messages/requests/{alice.id}/accept", token=bob.access_token
        )
        assert status == 204
        assert (await alice_phone.next("contact:accepted")) == {"userId": bob.id}
        ack = await alice_phone.call("typing", {"to": bob.id, "state": "start"})
        assert answered(ack, TypingAckView) == {"ok": True, "relayed": True}
        assert await bob_phone.next("typing") == {"from": alice.id, "to": bob.id, "state": "start"}
        again = await alice_phone.call("typing", {"to": bob.id, "state": "start"})
        assert again == {"ok": True, "relayed": False}
        strange = await alice_phone.call("typing", {"to": stranger.id, "state": "start"})
        assert strange["error"]["code"] == "forbidden"
    finally:
        await alice_phone.close()
        await bob_phone.close()
