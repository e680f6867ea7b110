"""REST history: conversations with last message and unread count, paged history, receipts."""

from __future__ import annotations

import uuid
from typing import Any

from hub.messaging.views import ConversationPage, MessagePage, ReadMarkView, SentMessageView
from hub.protocol.cursors import encode_cursor
from tests.support import Account, Api, Phone, open_box, seal
from tests.support.bands import make_contacts


async def send_rest(api: Api, sender: Account, to: Account, text: str) -> str:
    payload = {"id": str(uuid.uuid4()), "to": to.id, **seal(sender, to, text)}
    status, body = await api.request(
        "POST", "/api/messages", token=sender.access_token, json=payload
    )
    assert status == 201 and body["id"] == payload["id"], body
    SentMessageView.model_validate(body)
    return payload["id"]


async def conversations(api: Api, reader: Account, query: str = "") -> Any:
    status, page = await api.request("GET", f"/api/messages{query}", token=reader.access_token)
    assert status == 200, page
    ConversationPage.model_validate(page)
    return page


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

    body = await conversations(api, bob)
    assert body["nextCursor"] is None
    by_peer = {item["conversationId"]: item for item in body["items"]}
    assert set(by_peer) == {alice.id, carol.id}
    assert body["items"][0]["conversationId"] == carol.id  # most recent first
    assert by_peer[alice.id]["unread"] == 3 and by_peer[alice.id]["kind"] == "direct"
    last = by_peer[alice.id]["lastMessage"]
    assert last["id"] == ids[-1] and open_box(bob, alice.public_key_b64, last) == "a2"

    status, body = await api.request("PUT", f"/api/messages/{ids[0]}/read", token=bob.access_token)
    assert status == 200 and body["status"] == "read"
    ReadMarkView.model_validate(body)
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
    await make_contacts(api, alice, bob)  # more than a request's 3 messages
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
        assert isinstance(page["nextCursor"], str)  # opaque, not a seq to compute with
        MessagePage.model_validate(page)
        status, page = await api.request(
            "GET",
            f"/api/messages/{alice.id}?limit=2&cursor={page['nextCursor']}",
            token=bob.access_token,
        )
        assert status == 200, page
        seen += [m["id"] for m in page["items"]]
    assert seen == list(reversed(sent))
    for garbage in ("3", "not-a-cursor", encode_cursor(["-1"]), encode_cursor(["1", "2"])):
        status, body = await api.request(
            "GET", f"/api/messages/{alice.id}?cursor={garbage}", token=bob.access_token
        )
        assert status == 400 and body["error"]["details"]["field"] == "cursor", (garbage, body)
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


async def test_conversations_page_through_more_than_the_limit(hub_node):
    api = Api(hub_node.url)
    bob, *peers = await api.register_many("bob", "p0", "p1", "p2", "p3", "p4")
    for peer in peers:
        await send_rest(api, peer, bob, f"hi from {peer.name}")
    await send_rest(api, peers[1], bob, "again")  # p1 now has the newest message
    newest_first = [peers[1], peers[4], peers[3], peers[2], peers[0]]

    seen: list[str] = []
    page = await conversations(api, bob, "?limit=2")
    pages = 1
    while True:
        assert len(page["items"]) <= 2
        seen += [item["conversationId"] for item in page["items"]]
        if page["nextCursor"] is None:
            break
        page = await conversations(api, bob, f"?limit=2&cursor={page['nextCursor']}")
        pages += 1
    assert seen == [p.id for p in newest_first] and pages == 3
    unread = {item["conversationId"]: item["unread"] for item in page["items"]}
    assert unread == {peers[0].id: 1}

    first = await conversations(api, bob, "?limit=2")
    assert [i["unread"] for i in first["items"]] == [2, 1]
    # A conversation that gets a message while Bob pages moves to the top: it is not shown
    # again further down, and the pages after it are unchanged.
    await send_rest(api, peers[2], bob, "meanwhile")
    second = await conversations(api, bob, f"?limit=2&cursor={first['nextCursor']}")
    assert [i["conversationId"] for i in second["items"]] == [peers[3].id, peers[0].id]
    assert second["nextCursor"] is None
    top = await conversations(api, bob, "?limit=1")
    assert top["items"][0]["conversationId"] == peers[2].id and top["nextCursor"] is not None

    status, body = await api.request("GET", "/api/messages?cursor=garbage!", token=bob.access_token)
    assert status == 400 and body["error"]["code"] == "invalid_payload"
