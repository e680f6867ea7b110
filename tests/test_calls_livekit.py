"""The LiveKit side of calls: REST tokens only for rooms you belong to, rooms created through
the LiveKit server API (a local fake speaking Twirp), and webhooks signed as LiveKit signs
them — accepted when they verify, refused with 401 and no change when they do not."""

from __future__ import annotations

import json
import uuid

import aiohttp

from hub.calls.views import LiveKitWebhookAck, OpenedRoomView, RoomTokenView
from tests.support import Api, free_port
from tests.support.bands import create_band
from tests.support.calls import (
    CHAT_KEY,
    CHAT_SECRET,
    MAIN_KEY,
    MAIN_SECRET,
    MAIN_URL,
    CallPhone,
    assert_token,
    call_nodes,  # noqa: F401  (fixture)
    fake_livekit,  # noqa: F401  (fixture)
    no_event,
    participant_event,
    seed_conversation,
    signed_webhook,
)


async def _post_webhook(
    url: str, instance: str, body: str | bytes, authorization: str
) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/livekit/webhook/{instance}",
            data=body.encode() if isinstance(body, str) else body,
            headers={"Authorization": authorization, "Content-Type": "application/webhook+json"},
        ) as response,
    ):
        answer = await response.json()
        if response.status == 200:
            LiveKitWebhookAck.model_validate(answer)
        return response.status, answer


async def test_rest_token_only_for_rooms_the_caller_belongs_to(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_b.url)
    alice, bob, outsider = await api.register_many("alice", "bob", "outsider")
    await seed_conversation(test_env.database_url, alice, bob)
    band = (await create_band(api, alice, bob))["id"]
    caller = await CallPhone(alice).connect(node_a.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "video"})
        room = ack["call"]["room"]

        async def token(account, instance: str, room: str) -> tuple[int, dict]:
            status, body = await api.request(
                "POST",
                "/api/livekit/token",
                token=account.access_token,
                json={"instance": instance, "room": room},
            )
            if status == 200:
                RoomTokenView.model_validate(body)
            return status, body

        status, body = await token(bob, "main", room)
        assert status == 200 and body["room"] == room and body["url"] == MAIN_URL
        assert_token(body["token"], identity=bob.id, name="bob", room=room)
        status, body = await token(alice, "chat", f"band-{band}")
        assert status == 200
        assert_token(
            body["token"],
            identity=alice.id,
            name="alice",
            room=f"band-{band}",
            sources=["camera", "microphone"],
            key=CHAT_KEY,
            secret=CHAT_SECRET,
        )
        status, body = await token(alice, "main", f"user-{alice.id}")
        assert status == 200
        assert_token(body["token"], identity=alice.id, name="alice", room=f"user-{alice.id}")
        for account, instance, other_room in (
            (outsider, "main", room),
            (outsider, "main", f"band-{band}"),
            (bob, "main", f"user-{alice.id}"),
            (bob, "chat", room),  # the call is on main
            (bob, "main", "lobby"),
        ):
            status, body = await token(account, instance, other_room)
            assert status == 403 and body["error"]["code"] == "forbidden", (other_room, body)
        status, body = await token(bob, "meet", room)
        assert status == 503 and body["error"]["code"] == "not_configured"
        status, _ = await api.request(
            "POST", "/api/livekit/token", json={"instance": "main", "room": room}
        )
        assert status == 401
    finally:
        await caller.close()


async def test_open_room_creates_it_on_the_instance_through_the_server_api(
    call_nodes,  # noqa: F811
    fake_livekit,  # noqa: F811
    test_env,
):
    dead = f"http://127.0.0.1:{free_port()}"
    (node,) = await call_nodes(count=1, LIVEKIT_CHAT_API_URL=dead)
    api = Api(node.url)
    alice, bob, outsider = await api.register_many("alice", "bob", "outsider")
    band = (await create_band(api, alice, bob))["id"]
    status, body = await api.request(
        "POST",
        "/api/livekit/room",
        token=bob.access_token,
        json={"instance": "main", "band": band},
    )
    assert status == 200, body
    OpenedRoomView.model_validate(body)
    assert body["room"] == f"band-{band}" and body["url"] == MAIN_URL
    assert body["sid"].startswith("RM_")
    ((request, claims),) = fake_livekit.created
    assert request.name == f"band-{band}" and request.max_participants == 2
    assert json.loads(request.metadata) == {"band": band}
    assert claims.video is not None and claims.video.room_create

    status, body = await api.request(
        "POST", "/api/livekit/room", token=alice.access_token, json={"instance": "main"}
    )
    assert status == 200 and body["room"] == f"user-{alice.id}"
    # A non-member cannot tell a band from a missing one, as on every band route.
    for account, target in ((outsider, band), (alice, str(uuid.uuid4()))):
        status, body = await api.request(
            "POST",
            "/api/livekit/room",
            token=account.access_token,
            json={"instance": "main", "band": target},
        )
        assert status == 404 and body == {
            "error": {"code": "not_found", "message": "no such band"}
        }, body
    status, body = await api.request(
        "POST",
        "/api/livekit/room",
        token=alice.access_token,
        json={"instance": "chat", "band": band},
    )
    assert status == 503 and body["error"]["code"] == "unavailable"
    status, body = await api.request(
        "POST", "/api/livekit/room", token=alice.access_token, json={"instance": "meet"}
    )
    assert status == 503 and body["error"]["code"] == "not_configured"
    assert len(fake_livekit.created) == 2


async def test_signed_webhook_ends_the_call_and_a_tampered_one_changes_nothing(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    await seed_conversation(test_env.database_url, alice, bob)
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob).connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "audio"})
        call_id, room = ack["call"]["id"], ack["call"]["room"]
        await bob_phone.next("call:incoming")
        assert (await bob_phone.call("call:accept", {"call": call_id}))["ok"]
        await caller.next("call:accepted")

        left = participant_event("participant_left", room, bob.id)
        body, authorization = signed_webhook(left)
        tampered = body.replace(bob.id, alice.id)
        assert tampered != body
        refusals = [
            (tampered, authorization),  # body changed after signing
            (body, signed_webhook(left, key=MAIN_KEY, secret="not-" + MAIN_SECRET)[1]),
            (body, signed_webhook(left, key=CHAT_KEY, secret=CHAT_SECRET)[1]),  # other instance
            (body, ""),
            (body, "Bearer garbage"),
            (b"\xff" + body.encode(), authorization),  # not UTF-8: not LiveKit's
        ]
        for refused_body, refused_auth in refusals:
            status, answer = await _post_webhook(node_b.url, "main", refused_body, refused_auth)
            assert status == 401 and answer["error"]["code"] == "unauthorized", answer
        await no_event(caller, "call:ended", 1)
        assert bob_phone.pending("call:ended") == 0
        # Unchanged: the call is still answered (a cancel is refused, not "not found").
        still = await caller.call("call:cancel", {"call": call_id})
        assert still["error"]["code"] == "conflict"

        joined = participant_event("participant_joined", room, alice.id)
        status, answer = await _post_webhook(node_b.url, "main", *signed_webhook(joined))
        assert status == 200 and answer == {"ok": True, "handled": True}
        status, answer = await _post_webhook(node_b.url, "main", body, authorization)
        assert status == 200 and answer == {"ok": True, "handled": True}
        ended = await caller.next("call:ended")
        assert ended["call"] == call_id and ended["by"] == bob.id
        assert (await bob_phone.next("call:ended"))["by"] == bob.id
        status, answer = await _post_webhook(node_a.url, "main", body, authorization)
        assert status == 200 and answer["handled"] is False  # a replay finds no call
        await no_event(caller, "call:ended", 1)
        status, history = await api.request("GET", "/api/calls", token=bob.access_token)
        assert [i["outcome"] for i in history["items"]] == ["answered"]
        status, answer = await _post_webhook(node_a.url, "meet", body, authorization)
        assert status == 503
    finally:
        await caller.close()
        await bob_phone.close()


async def test_room_finished_webhook_ends_a_band_call_for_everyone(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = (await create_band(api, alice, bob, carol))["id"]
    caller = await CallPhone(alice).connect(node_a.url)
    bob_phone = await CallPhone(bob).connect(node_b.url)
    carol_phone = await CallPhone(carol).connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"band": band, "instance": "chat", "media": "video"})
        call_id, room = ack["call"]["id"], ack["call"]["room"]
        await bob_phone.next("call:incoming")
        await carol_phone.next("call:incoming")
        assert (await bob_phone.call("call:accept", {"call": call_id}))["ok"]
        # LiveKit's webhooks for the chat instance are signed with the chat key.
        finished = participant_event("room_finished", room)
        status, _ = await _post_webhook(
            node_a.url, "chat", *signed_webhook(finished, key=CHAT_KEY, secret=CHAT_SECRET)
        )
        assert status == 200
        for phone in (caller, bob_phone, carol_phone):
            ended = await phone.next("call:ended")
            assert ended == {"call": call_id, "by": None, "duration": ended["duration"]}
    finally:
        for phone in (caller, bob_phone, carol_phone):
            await phone.close()
