"""Presence across devices and nodes, visible only to people who share a conversation."""

from __future__ import annotations

import uuid

from tests.support import Api, Phone, seal


async def _converse(api: Api, url: str) -> tuple:  # type: ignore[type-arg]
    alice, bob = await api.register_many("alice", "bob")
    phone = await Phone(alice, "setup").connect(url)
    try:
        ack = await phone.call(
            "message:send", {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "hey")}
        )
        assert ack["ok"], ack
    finally:
        await phone.close()
    # A first message to a stranger is a request: the conversation counts once accepted.
    status, _ = await api.request(
        "POST", f"/api/messages/requests/{alice.id}/accept", token=bob.access_token
    )
    assert status == 204
    return alice, bob


async def test_presence_crosses_nodes_and_spans_devices(two_hub_nodes):
    node_a, node_b = two_hub_nodes
    alice, bob = await _converse(Api(node_a.url), node_a.url)
    watcher = await Phone(alice).connect(node_a.url)
    try:
        ack = await watcher.call("presence:subscribe", {"users": [bob.id]})
        assert ack["ok"] and ack["presence"][0]["userId"] == bob.id
        assert ack["presence"][0]["status"] == "offline"
        bob_phone = await Phone(bob, "bob-phone").connect(node_b.url)
        assert (await watcher.next("presence"))["status"] == "online"
        bob_laptop = await Phone(bob, "bob-laptop").connect(node_a.url)
        await bob_phone.close()
        state = await watcher.call("presence:subscribe", {"users": [bob.id]})
        assert state["presence"][0]["status"] == "online"  # the laptop is still connected
        assert watcher.pending("presence") == 0
        await bob_laptop.close()
        offline = await watcher.next("presence")
        assert offline["status"] == "offline" and isinstance(offline["lastSeen"], int)
    finally:
        await watcher.close()


async def test_devices_of_a_killed_node_go_offline_by_themselves(two_hub_nodes):
    node_a, node_b = two_hub_nodes  # DEVICE_TTL_SECONDS=3 for these nodes
    alice, bob = await _converse(Api(node_a.url), node_a.url)
    watcher = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        ack = await watcher.call("presence:subscribe", {"users": [bob.id]})
        assert ack["presence"][0]["status"] == "online"
        assert bob_phone.client.connected
        await node_b.kill()
        offline = await watcher.next("presence", timeout=12)
        assert offline["userId"] == bob.id and offline["status"] == "offline"
        again = await watcher.call("presence:subscribe", {"users": [bob.id]})
        assert again["presence"][0]["status"] == "offline"
    finally:
        await watcher.close()


async def test_presence_of_a_stranger_is_forbidden(hub_node):
    api = Api(hub_node.url)
    alice, stranger = await api.register_many("alice", "stranger")
    watcher = await Phone(alice).connect(hub_node.url)
    try:
        ack = await watcher.call("presence:subscribe", {"users": [stranger.id]})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        missing = await watcher.call("presence:subscribe", {"users": [str(uuid.uuid4())]})
        assert missing["error"]["code"] == "forbidden"  # no hint whether the user exists
    finally:
        await watcher.close()
