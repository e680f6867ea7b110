"""Push registration and mute routes: who may register which device, what bad input gets,
and that a token dies with its device (revoked, logged out) or moves to a second device."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.support import Account, Api, Phone
from tests.support.calls import fake_livekit  # noqa: F401
from tests.support.push import push_fakes, push_nodes  # noqa: F401


async def device(url: str, account: Account, name: str) -> str:
    """A device that exists (it connected once); its access token."""
    phone = await Phone(account, name).connect(url)
    await phone.close()
    return account.device_tokens[name]


async def register(url: str, token: str, device_id: str, body: Any) -> tuple[int, Any]:
    return await Api(url).request("PUT", f"/api/devices/{device_id}/push", token=token, json=body)


async def pushes_shown(url: str, token: str) -> dict[str, Any]:
    _, body = await Api(url).request("GET", "/api/devices", token=token)
    return {d["id"]: d["push"] for d in body["items"]}


APNS = {"provider": "apns", "token": "ab" * 32}


async def test_only_the_device_itself_registers_and_another_users_device_is_not_found(
    push_nodes,  # noqa: F811
):
    (node,) = await push_nodes(count=1)
    bob, eve = await Api(node.url).register_many("bob", "eve")
    phone = await device(node.url, bob, "iphone")
    await device(node.url, bob, "ipad")
    eve_token = await device(node.url, eve, "eve-phone")
    status, body = await register(node.url, phone, "ipad", APNS)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await register(node.url, eve_token, "iphone", APNS)
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await register(node.url, phone, "no-such-device", APNS)
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await Api(node.url).request(
        "DELETE", "/api/devices/iphone/push", token=eve_token
    )
    assert status == 404
    status, body = await register(
        node.url, phone, "iphone", {**APNS, "voipToken": "cd" * 32, "environment": "sandbox"}
    )
    assert (status, body) == (200, {"provider": "apns", "environment": "sandbox", "voip": True})
    shown = await pushes_shown(node.url, phone)
    assert shown == {"iphone": body, "ipad": None}
    status, _ = await Api(node.url).request("DELETE", "/api/devices/iphone/push", token=phone)
    assert status == 204
    assert (await pushes_shown(node.url, phone))["iphone"] is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"provider": "webpush", "token": "ab" * 32},
        {"provider": "apns", "token": "not hex at all, no"},
        {"provider": "apns", "token": "ab"},
        {"provider": "apns", "token": "ab" * 32, "voipToken": "zz" * 32},
        {"provider": "apns", "token": "ab" * 32, "environment": "staging"},
        {"provider": "fcm", "token": "x" * 40, "voipToken": "ab" * 32},
        {"provider": "fcm", "token": "x" * 40, "environment": "sandbox"},
        {"provider": "fcm", "token": "spaces are not in tokens"},
        {"provider": "fcm", "token": "x" * 5000},
        {"provider": "apns", "token": "ab" * 32, "extra": 1},
        {"provider": "apns", "token": 12345678901234567890},
        ["apns"],
    ],
)
async def test_a_bad_registration_is_refused_clearly_and_stores_nothing(
    push_nodes,  # noqa: F811
    body: Any,
):
    (node,) = await push_nodes(count=1)
    (bob,) = await Api(node.url).register_many("bob")
    phone = await device(node.url, bob, "iphone")
    status, answer = await register(node.url, phone, "iphone", body)
    # Over-long fields are the house's too_large (413); everything else invalid_payload.
    assert (status, answer["error"]["code"]) in ((400, "invalid_payload"), (413, "too_large"))
    assert answer["error"]["message"], answer
    assert (await pushes_shown(node.url, phone)) == {"iphone": None}


async def test_a_token_moves_to_the_second_device_that_registers_it(push_nodes):  # noqa: F811
    (node,) = await push_nodes(count=1)
    bob, carol = await Api(node.url).register_many("bob", "carol")
    token = secrets.token_hex(32)
    bob_phone = await device(node.url, bob, "shared-iphone")
    carol_phone = await device(node.url, carol, "shared-iphone")
    assert (await register(node.url, bob_phone, "shared-iphone", {**APNS, "token": token}))[
        0
    ] == 200
    assert (await register(node.url, carol_phone, "shared-iphone", {**APNS, "token": token}))[
        0
    ] == 200
    assert (await pushes_shown(node.url, bob_phone))["shared-iphone"] is None
    assert (await pushes_shown(node.url, carol_phone))["shared-iphone"] is not None


async def test_a_token_dies_with_its_device_revoked_or_logged_out(push_nodes):  # noqa: F811
    (node,) = await push_nodes(count=1)
    (bob,) = await Api(node.url).register_many("bob")
    phone = await device(node.url, bob, "iphone")
    tablet = await device(node.url, bob, "ipad")
    assert (await register(node.url, tablet, "ipad", APNS))[0] == 200
    status, _ = await Api(node.url).request("DELETE", "/api/devices/ipad", token=tablet)
    assert status == 204  # the tablet removes itself: a logout
    assert "ipad" not in await pushes_shown(node.url, phone)
    assert (await register(node.url, phone, "iphone", APNS))[0] == 200
    # A new login of the same device replaces its session, and the old token goes with it.
    status, login = await Api(node.url).request(
        "POST",
        "/api/auth/login",
        json={"email": bob.email, "password": "correct horse battery", "device": {"id": "iphone"}},
    )
    assert status == 200, login
    assert (await pushes_shown(node.url, login["accessToken"]))["iphone"] is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"level": "some"},
        {"level": "all", "mutedUntil": 4_102_444_800_000},
        {"level": "none", "mutedUntil": 1},
        {"level": "none", "mutedUntil": -5},
        {"level": "none", "mutedUntil": "tomorrow"},
        {"level": "none", "mutedUntil": True},
        {"level": "none", "mutedUntil": 2**60},
    ],
)
async def test_a_bad_mute_is_refused_clearly(push_nodes, body: Any):  # noqa: F811
    (node,) = await push_nodes(count=1)
    alice, bob = await Api(node.url).register_many("alice", "bob")
    phone = await device(node.url, bob, "iphone")
    sender = await Phone(alice).connect(node.url)
    from tests.support import seal

    ack = await sender.call(
        "message:send",
        {"id": "00000000-0000-4000-8000-000000000001", "to": bob.id, **seal(alice, bob, "hi")},
    )
    assert ack["ok"], ack
    await sender.close()
    # A stranger's first message is a request; accepted, it is a conversation Bob can mute.
    accepted, _ = await Api(node.url).request(
        "POST", f"/api/messages/requests/{alice.id}/accept", token=phone
    )
    assert accepted == 204
    path = f"/api/conversations/{alice.id}/notifications"
    status, answer = await Api(node.url).request("PUT", path, token=phone, json=body)
    assert (status, answer["error"]["code"]) == (400, "invalid_payload"), answer
    status, level = await Api(node.url).request("GET", path, token=phone)
    assert (status, level) == (
        200,
        {"conversationId": alice.id, "level": "all", "mutedUntil": None},
    )


async def test_a_conversation_you_are_not_in_cannot_be_muted(push_nodes):  # noqa: F811
    (node,) = await push_nodes(count=1)
    bob, stranger = await Api(node.url).register_many("bob", "stranger")
    phone = await device(node.url, bob, "iphone")
    path = f"/api/conversations/{stranger.id}/notifications"
    status, answer = await Api(node.url).request("PUT", path, token=phone, json={"level": "none"})
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = await Api(node.url).request(
        "GET", "/api/conversations/not-a-uuid/notifications", token=phone
    )
    assert status == 400


async def test_registering_for_a_provider_the_hub_is_not_configured_for_is_503(hub_node):
    (bob,) = await Api(hub_node.url).register_many("bob")
    phone = await device(hub_node.url, bob, "iphone")
    for body in (APNS, {"provider": "fcm", "token": "x" * 40}):
        status, answer = await register(hub_node.url, phone, "iphone", body)
        assert (status, answer["error"]["code"]) == (503, "not_configured"), answer
