"""Push to phones in a pocket, end to end: real hub nodes, the fake APNs (HTTP/2 over TLS,
ES256 provider tokens checked) and the fake FCM (OAuth token endpoint, bearer checked)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

from tests.support import Account, Api, Phone, seal
from tests.support.bands import make_contacts
from tests.support.calls import CallPhone, fake_livekit, no_event, seed_conversation  # noqa: F401
from tests.support.push import TOPIC, PushFakes, push_fakes, push_nodes  # noqa: F401


def apns_token() -> str:
    return secrets.token_hex(32)


def fcm_token() -> str:
    return secrets.token_urlsafe(40) + ":APA91b" + secrets.token_urlsafe(60)


async def pocket_device(
    url: str, account: Account, device: str, **registration: Any
) -> dict[str, Any]:
    """A device that connected once (so it exists), registered its push token and went into
    the pocket (no socket). Returns what it registered."""
    phone = await Phone(account, device).connect(url)
    status, body = await Api(url).request(
        "PUT",
        f"/api/devices/{device}/push",
        token=account.device_tokens[device],
        json=registration,
    )
    assert status == 200, body
    await phone.close()
    await wait_offline(url, account, device)
    return registration


async def wait_offline(url: str, account: Account, device: str) -> None:
    any_token = next(iter(account.device_tokens.values()))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, body = await Api(url).request("GET", "/api/devices", token=any_token)
        if not any(d["id"] == device and d["online"] for d in body["items"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{device} still online")


async def send(phone: Phone, sender: Account, to: Account, text: str = "hello") -> dict[str, Any]:
    payload = {"id": str(uuid.uuid4()), "to": to.id, **seal(sender, to, text)}
    ack = await phone.call("message:send", payload)
    assert ack["ok"], ack
    return payload


def alerts(fakes: PushFakes, token: str) -> list[Any]:
    return [
        r
        for r in fakes.apns.delivered
        if r.token == token and r.headers["apns-push-type"] == "alert"
    ]


async def test_a_message_to_a_phone_in_a_pocket_on_node_b_gets_one_alert_with_its_badge(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    node_a, node_b = await push_nodes()
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    await make_contacts(api, alice, bob)
    phone_token, tablet_token = apns_token(), apns_token()
    await pocket_device(node_b.url, bob, "iphone", provider="apns", token=phone_token)
    tablet = await Phone(bob, "ipad").connect(node_b.url)
    status, _ = await Api(node_b.url).request(
        "PUT",
        "/api/devices/ipad/push",
        token=bob.device_tokens["ipad"],
        json={"provider": "apns", "token": tablet_token},
    )
    assert status == 200
    sender = await Phone(alice).connect(node_a.url)
    try:
        sent = await send(sender, alice, bob, "the secret setlist")
        await tablet.next("message:new")  # the connected tablet: its socket, no push
        await push_fakes.apns.wait_for(lambda: len(alerts(push_fakes, phone_token)) == 1)
        (alert,) = alerts(push_fakes, phone_token)
        assert alert.http_version == "2" and alert.headers["apns-topic"] == TOPIC
        assert alert.headers["apns-priority"] == "10"
        assert alert.payload == {
            "aps": {
                "alert": {"title": "New message", "body": "New message"},
                "badge": 1,
                "sound": "default",
                "mutable-content": 1,
                "thread-id": alice.id,
            },
            "hub": {
                "type": "message",
                "conversationId": alice.id,
                "messageId": sent["id"],
                "from": alice.id,
                "seq": 1,
            },
        }
        assert b"setlist" not in alert.raw and sent["ciphertext"].encode() not in alert.raw
        await asyncio.sleep(0.5)
        assert [r.token for r in push_fakes.apns.received] == [phone_token], "tablet: none"
        assert not push_fakes.problems, push_fakes.problems
        _, devices = await Api(node_a.url).request(
            "GET", "/api/devices", token=bob.device_tokens["ipad"]
        )
        shown = {d["id"]: d["push"] for d in devices["items"]}
        assert shown == {
            "iphone": {"provider": "apns", "environment": "production", "voip": False},
            "ipad": {"provider": "apns", "environment": "production", "voip": False},
        }
    finally:
        await sender.close()
        await tablet.close()


async def test_a_call_rings_the_iphone_by_voip_and_the_android_by_fcm_and_cancel_stops_both(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
    test_env,
):
    (node,) = await push_nodes(count=1)
    api = Api(node.url)
    alice, bob = await api.register_many("alice", "bob")
    await make_contacts(api, alice, bob)
    await seed_conversation(test_env.database_url, alice, bob)
    iphone_token, voip_token, android_token = apns_token(), apns_token(), fcm_token()
    await pocket_device(
        node.url, bob, "iphone", provider="apns", token=iphone_token, voipToken=voip_token
    )
    await pocket_device(node.url, bob, "pixel", provider="fcm", token=android_token)
    caller = await CallPhone(alice).connect(node.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "audio"})
        assert ack["ok"], ack
        call = ack["call"]
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 1)
        await push_fakes.fcm.wait_for(lambda: len(push_fakes.fcm.delivered) == 1)
        (voip,) = push_fakes.apns.delivered
        assert voip.token == voip_token
        assert voip.headers["apns-push-type"] == "voip"
        assert voip.headers["apns-topic"] == f"{TOPIC}.voip"
        assert voip.headers["apns-priority"] == "10"
        deadline = call["ringDeadline"] if "ringDeadline" in call else None
        expiration = int(voip.headers["apns-expiration"])
        assert voip.payload["hub"]["expiresAt"] // 1000 == expiration
        if deadline is not None:
            assert expiration == deadline // 1000
        assert voip.payload == {
            "hub": {
                "type": "call",
                "callId": call["id"],
                "from": alice.id,
                "instance": "main",
                "media": "audio",
                "expiresAt": voip.payload["hub"]["expiresAt"],
            }
        }
        (ring,) = push_fakes.fcm.delivered
        assert ring.message["token"] == android_token
        assert ring.message["android"]["priority"] == "high"
        assert 20 <= int(ring.message["android"]["ttl"].removesuffix("s")) <= 30
        assert (
            ring.message["data"]["type"] == "call" and ring.message["data"]["callId"] == call["id"]
        )

        cancel = await caller.call("call:cancel", {"call": call["id"]})
        assert cancel["ok"], cancel
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 2)
        await push_fakes.fcm.wait_for(lambda: len(push_fakes.fcm.delivered) == 2)
        ended = push_fakes.apns.delivered[1]
        assert ended.token == iphone_token, "call_ended goes to the device token, never VoIP"
        assert ended.headers["apns-push-type"] == "background"
        assert ended.headers["apns-priority"] == "5"
        assert ended.payload == {
            "aps": {"content-available": 1},
            "hub": {"type": "call_ended", "callId": call["id"], "reason": "cancelled"},
        }
        fcm_ended = push_fakes.fcm.delivered[1].message
        assert fcm_ended["android"]["priority"] == "high"
        assert fcm_ended["data"] == {
            "type": "call_ended",
            "callId": call["id"],
            "reason": "cancelled",
        }
        await asyncio.sleep(0.5)
        assert [r.headers["apns-push-type"] for r in push_fakes.apns.received] == [
            "voip",
            "background",
        ]
        assert not push_fakes.problems, push_fakes.problems
    finally:
        await caller.close()


async def test_reading_on_the_tablet_sends_the_phone_in_the_pocket_its_new_badge(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    alice, bob = await Api(node.url).register_many("alice", "bob")
    await make_contacts(Api(node.url), alice, bob)
    android = fcm_token()
    await pocket_device(node.url, bob, "pixel", provider="fcm", token=android)
    tablet = await Phone(bob, "tablet").connect(node.url)
    sender = await Phone(alice).connect(node.url)
    try:
        first = await send(sender, alice, bob)
        second = await send(sender, alice, bob)
        await tablet.next("message:new")
        await tablet.next("message:new")
        await push_fakes.fcm.wait_for(lambda: len(push_fakes.fcm.delivered) >= 1)
        assert push_fakes.fcm.delivered[0].message["data"]["badge"] in ("1", "2")
        ack = await tablet.call("message:read", {"ids": [first["id"], second["id"]]})
        assert ack["ok"], ack
        await push_fakes.fcm.wait_for(
            lambda: any(r.message["data"]["type"] == "badge" for r in push_fakes.fcm.delivered)
        )
        (badge,) = [
            r.message for r in push_fakes.fcm.delivered if r.message["data"]["type"] == "badge"
        ]
        assert badge["token"] == android and badge["data"] == {"type": "badge", "badge": "0"}
        assert not push_fakes.problems, push_fakes.problems
    finally:
        await sender.close()
        await tablet.close()


async def test_a_muted_conversation_sends_no_push_and_others_still_do(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    api = Api(node.url)
    alice, carol, bob = await api.register_many("alice", "carol", "bob")
    await make_contacts(api, bob, alice, carol)
    token = apns_token()
    await pocket_device(node.url, bob, "iphone", provider="apns", token=token)
    from_alice = await Phone(alice).connect(node.url)
    from_carol = await Phone(carol).connect(node.url)
    try:
        await send(from_alice, alice, bob)  # the conversation exists, and its first alert
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 1)
        status, body = await api.request(
            "PUT",
            f"/api/conversations/{alice.id}/notifications",
            token=bob.device_tokens["iphone"],
            json={"level": "none", "mutedUntil": None},
        )
        assert status == 200, body
        assert body == {"conversationId": alice.id, "level": "none", "mutedUntil": None}
        status, got = await api.request(
            "GET", f"/api/conversations/{alice.id}/notifications", token=bob.device_tokens["iphone"]
        )
        assert (status, got) == (200, body)
        await send(from_alice, alice, bob)
        await send(from_carol, carol, bob)
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 2)
        await asyncio.sleep(1)
        last = push_fakes.apns.delivered[-1].payload
        assert last["hub"]["from"] == carol.id and last["aps"]["badge"] == 3, "muted still counts"
        assert len(push_fakes.apns.received) == 2
    finally:
        await from_alice.close()
        await from_carol.close()


async def test_a_message_request_from_a_stranger_alerts_nobody_and_a_contacts_message_does(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    """A stranger's messages are requests (consent): they wait silently in the requests list;
    the same phone still gets the alert of a contact's message sent after them."""
    (node,) = await push_nodes(count=1)
    api = Api(node.url)
    stranger, carol, bob = await api.register_many("stranger", "carol", "bob")
    await make_contacts(api, bob, carol)
    token = apns_token()
    await pocket_device(node.url, bob, "iphone", provider="apns", token=token)
    from_stranger = await Phone(stranger).connect(node.url)
    from_carol = await Phone(carol).connect(node.url)
    try:
        await send(from_stranger, stranger, bob, "buy my mixtape")
        await send(from_stranger, stranger, bob, "please")
        await send(from_carol, carol, bob)
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 1)
        await asyncio.sleep(1)
        assert [r.payload["hub"]["from"] for r in push_fakes.apns.received] == [carol.id]
        status, requests = await api.request(
            "GET", "/api/messages/requests", token=bob.device_tokens["iphone"]
        )
        assert status == 200 and [r["userId"] for r in requests["items"]] == [stranger.id]
    finally:
        await from_stranger.close()
        await from_carol.close()


async def test_a_token_apns_calls_gone_is_removed(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    alice, bob = await Api(node.url).register_many("alice", "bob")
    await make_contacts(Api(node.url), alice, bob)
    token = apns_token()
    push_fakes.apns.token_answers[token] = (410, "Unregistered")
    await pocket_device(node.url, bob, "iphone", provider="apns", token=token)
    sender = await Phone(alice).connect(node.url)
    try:
        await send(sender, alice, bob)
        await push_fakes.apns.wait_for(
            lambda: (
                push_fakes.apns.received[-1:] != [] and push_fakes.apns.received[-1].status == 410
            )
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _, body = await Api(node.url).request(
                "GET", "/api/devices", token=bob.device_tokens["iphone"]
            )
            if body["items"][0]["push"] is None:
                break
            await asyncio.sleep(0.05)
        assert body["items"][0]["push"] is None
        await send(sender, alice, bob)
        await asyncio.sleep(1)
        assert len(push_fakes.apns.received) == 1, "a forgotten token is not pushed again"
    finally:
        await sender.close()


async def test_fcm_unregistered_removes_the_token(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    alice, bob = await Api(node.url).register_many("alice", "bob")
    await make_contacts(Api(node.url), alice, bob)
    token = fcm_token()
    push_fakes.fcm.unregistered.add(token)
    await pocket_device(node.url, bob, "pixel", provider="fcm", token=token)
    sender = await Phone(alice).connect(node.url)
    try:
        await send(sender, alice, bob)
        await push_fakes.fcm.wait_for(lambda: len(push_fakes.fcm.received) == 1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _, body = await Api(node.url).request(
                "GET", "/api/devices", token=bob.device_tokens["pixel"]
            )
            if body["items"][0]["push"] is None:
                break
            await asyncio.sleep(0.05)
        assert body["items"][0]["push"] is None
    finally:
        await sender.close()


async def test_a_provider_answering_503_twice_then_200_gets_the_push_delivered_once(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    alice, bob = await Api(node.url).register_many("alice", "bob")
    await make_contacts(Api(node.url), alice, bob)
    token = apns_token()
    push_fakes.apns.scripted.answers += [
        (503, "ServiceUnavailable", None),
        (429, "TooManyRequests", "0"),
    ]
    await pocket_device(node.url, bob, "iphone", provider="apns", token=token)
    sender = await Phone(alice).connect(node.url)
    try:
        await send(sender, alice, bob)
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 1)
        await asyncio.sleep(1)
        assert [r.status for r in push_fakes.apns.received] == [503, 429, 200]
        assert len({r.provider_token for r in push_fakes.apns.received}) == 1, "JWT reused"
    finally:
        await sender.close()


async def test_a_node_killed_between_commit_and_push_still_gets_the_push_out_from_another(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    timing = {"PUSH_TIMEOUT_SECONDS": "5", "PUSH_CLAIM_IDLE_MS": "6000"}
    (node_a,) = await push_nodes(count=1, **timing)
    alice, bob = await Api(node_a.url).register_many("alice", "bob")
    await make_contacts(Api(node_a.url), alice, bob)
    token = apns_token()
    await pocket_device(node_a.url, bob, "iphone", provider="apns", token=token)
    push_fakes.apns.hold_next = 1  # node A's request is never answered
    sender = await Phone(alice).connect(node_a.url)
    sent = await send(sender, alice, bob)
    await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.received) == 1)
    await node_a.kill()  # mid-push: the job is taken, not finished
    (node_b,) = await push_nodes(count=1, **timing)
    await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 1, timeout=20)
    (pushed,) = push_fakes.apns.delivered
    assert pushed.token == token and pushed.payload["hub"]["messageId"] == sent["id"]
    assert node_b.process.returncode is None


async def test_a_burst_of_50_messages_makes_a_handful_of_pushes_the_last_with_the_badge(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1, PUSH_COALESCE_MS="1500")
    alice, bob = await Api(node.url).register_many("alice", "bob")
    await make_contacts(Api(node.url), alice, bob)
    token = fcm_token()
    await pocket_device(node.url, bob, "pixel", provider="fcm", token=token)
    sender = await Phone(alice).connect(node.url)
    try:
        for n in range(50):
            await send(sender, alice, bob, f"burst {n}")
        await push_fakes.fcm.wait_for(
            lambda: any(r.message["data"]["badge"] == "50" for r in push_fakes.fcm.delivered),
            timeout=10,
        )
        await asyncio.sleep(2)
        pushed = push_fakes.fcm.delivered
        assert 1 <= len(pushed) <= 4, [r.message["data"]["badge"] for r in pushed]
        assert pushed[-1].message["data"]["badge"] == "50"
        assert pushed[-1].message["data"]["seq"] == "50"
        sync = await Phone(bob, "pixel").connect(node.url)
        page = await sync.call("message:sync", {"after": 0, "limit": 100})
        assert len(page["messages"]) == 50, "nothing is dropped from sync"
        await sync.close()
    finally:
        await sender.close()


async def test_a_deleted_message_withdraws_its_alert_with_a_background_push(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    alice, bob = await Api(node.url).register_many("alice", "bob")
    await make_contacts(Api(node.url), alice, bob)
    token = apns_token()
    await pocket_device(node.url, bob, "iphone", provider="apns", token=token)
    sender = await Phone(alice).connect(node.url)
    try:
        sent = await send(sender, alice, bob)
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 1)
        ack = await sender.call("message:delete", {"id": sent["id"]})
        assert ack["ok"], ack
        await push_fakes.apns.wait_for(lambda: len(push_fakes.apns.delivered) == 2)
        withdrawn = push_fakes.apns.delivered[1]
        assert withdrawn.headers["apns-push-type"] == "background"
        assert withdrawn.payload == {
            "aps": {"content-available": 1},
            "hub": {"type": "message_deleted", "conversationId": alice.id, "messageId": sent["id"]},
        }
    finally:
        await sender.close()


async def test_a_node_with_push_worker_off_queues_pushes_that_another_node_sends(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    """A socket node can leave sending to push nodes: it queues, it never calls a provider,
    and the push waits in the shared queue until a node that sends comes up."""
    (relay,) = await push_nodes(count=1, PUSH_WORKER="off")
    alice, bob = await Api(relay.url).register_many("alice", "bob")
    await make_contacts(Api(relay.url), alice, bob)
    token = fcm_token()
    await pocket_device(relay.url, bob, "pixel", provider="fcm", token=token)
    sender = await Phone(alice).connect(relay.url)
    try:
        sent = await send(sender, alice, bob)
        await asyncio.sleep(2)
        assert push_fakes.fcm.received == [], "the relay node sent a push itself"
        (pusher,) = await push_nodes(count=1)
        await push_fakes.fcm.wait_for(lambda: len(push_fakes.fcm.delivered) == 1, timeout=10)
        (pushed,) = push_fakes.fcm.delivered
        assert pushed.message["token"] == token
        assert pushed.message["data"]["messageId"] == sent["id"]
        assert pusher.process.returncode is None
    finally:
        await sender.close()
