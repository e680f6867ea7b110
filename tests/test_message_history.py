"""REST history: conversations with last message and unread count, paged history, receipts."""

from __future__ import annotations

import uuid

from tests.support import Api, Phone, open_box, seal


async def test_conversations_list_last_message_and_unread_count(hub_node):
    api = Api(hub_node.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    ids = []
    for i in range(3):
        payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, f"a{i}")}
        status, body = await api.request(
            "POST", "/api/messages", token=alice.access_token, json=payload
        )
        assert status == 201 and body["id"] == payload["id"]
        ids.append(payload["id"])
    status, _ = await api.request(
        "POST",
        "/api/messages",
        token=carol.access_token,
        json={"id": str(uuid.uuid4()), "to": bob.id, **seal(carol, bob, "c0")},
    )
    assert status == 201

    status, body = await api.request("GET", "/api/messages", token=bob.access_token)
    assert status == 200
    by_peer = {item["conversationId"]: item for item in body["items"]}
    assert set(by_peer) == {alice.id, carol.id}
    assert body["items"][0]["conversationId"] == carol.id  # most recent first
    assert by_peer[alice.id]["unread"] == 3 and by_peer[alice.id]["kind"] == "direct"
    last = by_peer[alice.id]["lastMessage"]
    assert last["id"] == ids[-1] and open_box(bob, alice.public_key_b64, last) == "a2"

    status, body = await api.request("PUT", f"/api/messages/{ids[0]}/read", token=bob.access_token)
    assert status == 200 and body["status"] == "read"
    status, body = await api.request("GET", "/api/messages", token=bob.access_token)
    assert {i["conversationId"]: i["unread"] for i in body["items"]}[alice.id] == 2
    status, body = await api.request("GET", "/api/messages", token=alice.access_token)
    assert body["items"][0]["unread"] == 0  # her own messages are never unread for her

    status, body = await api.request(
        "PUT", f"/api/messages/{ids[1]}/read", token=alice.access_token
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.request(
        "PUT", f"/api/messages/{ids[1]}/read", token=carol.access_token
    )
    assert status == 403


async def test_history_pages_backwards_with_a_cursor(hub_node):
    api = Api(hub_node.url)
    alice, bob = await api.register_many("alice", "bob")
    phone = await Phone(alice).connect(hub_node.url)
    try:
        sent = []
        for i in range(5):
            payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, f"m{i}")}
            assert (await phone.call("message:send", payload))["ok"]
            sent.append(payload["id"])
    finally:
        await phone.close()
    status, page = await api.request(
        "GET", f"/api/messages/{alice.id}?limit=2", token=bob.access_token
    )
    assert status == 200 and [m["id"] for m in page["items"]] == [sent[4], sent[3]]
    seen = [m["id"] for m in page["items"]]
    while page["nextCursor"] is not None:
        status, page = await api.request(
            "GET",
            f"/api/messages/{alice.id}?limit=2&cursor={page['nextCursor']}",
            token=bob.access_token,
        )
        seen += [m["id"] for m in page["items"]]
    assert seen == list(reversed(sent))
    status, body = await api.request(
        "GET", f"/api/messages/{alice.id}?limit=0", token=bob.access_token
    )
    assert status == 400 and body["error"]["code"] == "invalid_payload"
    status, body = await api.request("GET", "/api/messages/not-a-uuid", token=bob.access_token)
    assert status == 400
    status, body = await api.request("GET", f"/api/messages/{alice.id}")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await api.request("GET", f"/api/messages/{bob.id}", token=alice.access_token)
    assert [m["id"] for m in body["items"]] == list(reversed(sent))  # the sender's own copies
