"""Bad input gets a clear error ack, stores nothing, and the connection stays usable."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from tests.support import Api, Phone, seal


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


@pytest.fixture
async def pair(hub_node):  # type: ignore[no-untyped-def]
    api = Api(hub_node.url)
    alice, bob = await api.register_many("alice", "bob")
    phone = await Phone(alice).connect(hub_node.url)
    yield phone, alice, bob
    await phone.close()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"nonce": b64(12)}, "invalid_payload"),
        ({"nonce": "not base64!"}, "invalid_payload"),
        ({"ciphertext": b64(8)}, "invalid_payload"),
        ({"ciphertext": b64(70_000)}, "too_large"),
        ({"ciphertext": 12345}, "invalid_payload"),
        ({"id": "not-a-uuid"}, "invalid_payload"),
        ({"to": None}, "invalid_payload"),
        ({"extra": True}, "invalid_payload"),
        ({"band": str(uuid.uuid4())}, "invalid_payload"),
    ],
)
async def test_bad_message_is_refused_with_a_clear_code(pair, change, code):
    phone, alice, bob = pair
    payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "x"), **change}
    ack = await phone.call("message:send", payload)
    assert ack["ok"] is False and ack["error"]["code"] == code
    assert ack["error"]["message"]
    sync = await phone.call("message:sync", {"after": 0})
    assert sync == {"ok": True, "messages": [], "more": False}


async def test_message_to_an_unknown_user_is_not_found(pair):
    phone, alice, bob = pair
    ack = await phone.call(
        "message:send", {"id": str(uuid.uuid4()), "to": str(uuid.uuid4()), **seal(alice, bob, "x")}
    )
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "payload", [None, "text", 42, [1, 2], {"after": "0"}, {"after": -1}, {"after": True}]
)
async def test_sync_with_a_bad_payload_is_invalid(pair, payload):
    phone, _, _ = pair
    ack = await phone.call("message:sync", payload)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"


async def test_unknown_event_gets_an_error_ack(pair):
    phone, _, _ = pair
    ack = await phone.call("no:such:event", {"x": 1})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    assert (await phone.call("message:sync", {"after": 0}))["ok"]


async def test_a_flood_is_rate_limited_and_the_connection_survives(pair):
    phone, _, _ = pair
    acks = [await phone.call("message:sync", {"after": 0}) for _ in range(130)]
    codes = {a["error"]["code"] for a in acks if not a["ok"]}
    assert codes == {"rate_limited"}
    assert sum(1 for a in acks if a["ok"]) >= 100
