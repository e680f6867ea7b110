"""A message's later life over two hub nodes: reactions and replies (``relatesTo``), edits
(``message:edit``), as every device of both users sees them live, in sync and in history."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.support import Account, Api, Phone, open_box, seal, start_hub_node
from tests.support.bands import create_band, make_contacts


def direct(sender: Account, to: Account, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "to": to.id, **seal(sender, to, text), **extra}


async def history(api: Api, reader: Account, conversation: str) -> list[dict[str, Any]]:
    status, page = await api.request(
        "GET", f"/api/messages/{conversation}", token=reader.access_token
    )
    assert status == 200, page
    return list(page["items"])


async def test_a_reaction_and_a_reply_carry_relates_to_and_only_the_reply_is_unread(
    two_hub_nodes,
):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    alice_phone = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        original = direct(alice, bob, "gig on friday?")
        assert (await alice_phone.call("message:send", original))["ok"]
        await bob_phone.next("message:new")
        assert (await bob_phone.call("message:read", {"ids": [original["id"]]}))["ok"]
        reaction = direct(alice, bob, "👍", relatesTo={"type": "reaction", "id": original["id"]})
        reply = direct(
            alice, bob, "bring the amp", relatesTo={"type": "reply", "id": original["id"]}
        )
        for payload in (reaction, reply):
            assert (await alice_phone.call("message:send", payload))["ok"]
            live = await bob_phone.next("message:new")
            assert live["id"] == payload["id"] and live["relatesTo"] == payload["relatesTo"]
            assert open_box(bob, alice.public_key_b64, live) in ("👍", "bring the amp")
        synced = (await bob_phone.call("message:sync", {"after": 0}))["messages"]
        assert [m.get("relatesTo") for m in synced] == [
            None,
            reaction["relatesTo"],
            reply["relatesTo"],
        ]
        listed = await history(api, bob, alice.id)
        assert [m["id"] for m in listed] == [reply["id"], reaction["id"], original["id"]]
        assert listed[0]["relatesTo"] == {"type": "reply", "id": original["id"]}
        status, conversations = await api.request("GET", "/api/messages", token=bob.access_token)
        assert status == 200 and conversations["items"][0]["unread"] == 1, conversations
    finally:
        await alice_phone.close()
        await bob_phone.close()


async def test_a_relation_to_a_message_of_another_conversation_is_not_found(hub_node):
    api = Api(hub_node.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    alice_phone = await Phone(alice).connect(hub_node.url)
    carol_phone = await Phone(carol).connect(hub_node.url)
    try:
        to_bob = direct(alice, bob, "just us")
        assert (await alice_phone.call("message:send", to_bob))["ok"]
        relation = {"type": "reply", "id": to_bob["id"]}
        for phone, payload in (
            (alice_phone, direct(alice, carol, "cross", relatesTo=relation)),
            (carol_phone, direct(carol, alice, "peek", relatesTo=relation)),
            (
                alice_phone,
                direct(alice, bob, "nothing", relatesTo={**relation, "id": str(uuid.uuid4())}),
            ),
        ):
            ack = await phone.call("message:send", payload)
            assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack
        assert (await carol_phone.call("message:sync", {"after": 0}))["messages"] == []
        bad = direct(alice, bob, "x", relatesTo={"type": "edit", "id": to_bob["id"]})
        ack = await alice_phone.call("message:send", bad)
        assert ack["error"]["code"] == "invalid_payload", ack
    finally:
        await alice_phone.close()
        await carol_phone.close()


async def test_an_edit_reaches_every_device_of_both_users_and_history_shows_it(two_hub_nodes):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    alice_phone = await Phone(alice).connect(node_a.url)
    alice_laptop = await Phone(alice, "laptop").connect(node_b.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    bob_tablet = await Phone(bob, "tablet").connect(node_a.url)
    phones = (alice_laptop, bob_phone, bob_tablet)
    try:
        original = direct(alice, bob, "soundcheck at 5")
        assert (await alice_phone.call("message:send", original))["ok"]
        for phone in phones:
            await phone.next("message:new")
        edit = {"id": str(uuid.uuid4()), "replaces": original["id"], **seal(alice, bob, "at 6")}
        ack = await alice_phone.call("message:edit", edit)
        assert ack == {"ok": True, "id": edit["id"], "ts": ack["ts"]}
        assert await alice_phone.call("message:edit", edit) == ack  # idempotent
        for phone in phones:
            live = await phone.next("message:new")
            assert live["id"] == edit["id"] and live["seq"] == 2
            assert live["relatesTo"] == {"type": "edit", "id": original["id"]}
        assert open_box(bob, alice.public_key_b64, live) == "at 6"
        for phone, account in ((bob_tablet, bob), (alice_laptop, alice)):
            synced = (await phone.call("message:sync", {"after": 1}))["messages"]
            assert [(m["id"], m["relatesTo"]["type"]) for m in synced] == [(edit["id"], "edit")]
            [listed] = await history(api, account, bob.id if account is alice else alice.id)
            assert listed["id"] == original["id"] and listed["ciphertext"] == original["ciphertext"]
            assert listed["edit"] == {
                "id": edit["id"],
                "ciphertext": edit["ciphertext"],
                "nonce": edit["nonce"],
                "ts": ack["ts"],
            }
        second = {"id": str(uuid.uuid4()), "replaces": original["id"], **seal(alice, bob, "at 7")}
        assert (await alice_phone.call("message:edit", second))["ok"]
        [listed] = await history(api, bob, alice.id)
        assert listed["edit"]["id"] == second["id"]
        refusals = [
            (bob_phone, {**edit, "id": str(uuid.uuid4())}, "forbidden"),  # not bob's message
            (
                alice_phone,
                {**edit, "id": str(uuid.uuid4()), "replaces": edit["id"]},
                "invalid_payload",
            ),
            (
                alice_phone,
                {**edit, "id": str(uuid.uuid4()), "replaces": str(uuid.uuid4())},
                "not_found",
            ),
        ]
        for phone, payload, code in refusals:
            refused = await phone.call("message:edit", payload)
            assert refused["ok"] is False and refused["error"]["code"] == code, refused
    finally:
        await alice_phone.close()
        for phone in phones:
            await phone.close()


async def test_a_band_message_is_edited_with_envelopes_for_the_current_members(hub_node):
    api = Api(hub_node.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = (await create_band(api, alice, bob, carol))["id"]
    alice_phone = await Phone(alice).connect(hub_node.url)
    carol_phone = await Phone(carol).connect(hub_node.url)
    try:
        envelopes = [{"to": m.id, **seal(alice, m, "setlist v1")} for m in (bob, carol)]
        original = {"id": str(uuid.uuid4()), "band": band, "envelopes": envelopes}
        assert (await alice_phone.call("message:send", original))["ok"]
        await carol_phone.next("message:new")
        only_bob = [{"to": bob.id, **seal(alice, bob, "setlist v2")}]
        edit = {"id": str(uuid.uuid4()), "replaces": original["id"], "envelopes": only_bob}
        refused = await alice_phone.call("message:edit", edit)
        assert refused["error"]["code"] == "conflict", refused
        direct_shape = {"id": edit["id"], "replaces": original["id"], **seal(alice, bob, "v2")}
        refused = await alice_phone.call("message:edit", direct_shape)
        assert refused["error"]["code"] == "invalid_payload", refused
        edit["envelopes"] = [{"to": m.id, **seal(alice, m, "setlist v2")} for m in (bob, carol)]
        assert (await alice_phone.call("message:edit", edit))["ok"]
        live = await carol_phone.next("message:new")
        assert live["band"] == band and live["relatesTo"] == {"type": "edit", "id": original["id"]}
        assert open_box(carol, alice.public_key_b64, live) == "setlist v2"
    finally:
        await alice_phone.close()
        await carol_phone.close()


async def test_an_edit_after_the_window_is_forbidden(test_env, tmp_path):
    node = await start_hub_node(test_env.hub_env(EDIT_WINDOW_SECONDS="0"), tmp_path / "n", "n")
    api = Api(node.url)
    alice, bob = await api.register_many("alice", "bob")
    alice_phone = await Phone(alice).connect(node.url)
    try:
        original = direct(alice, bob, "typo")
        assert (await alice_phone.call("message:send", original))["ok"]
        edit = {"id": str(uuid.uuid4()), "replaces": original["id"], **seal(alice, bob, "fixed")}
        refused = await alice_phone.call("message:edit", edit)
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden", refused
    finally:
        await alice_phone.close()
        await node.stop()


async def stored_ciphertexts(test_env, message_ids: list[str]) -> list[bytes]:
    """Straight from PostgreSQL: every copy's ciphertext and nonce of these messages."""
    conn = await asyncpg.connect(test_env.database_url)
    try:
        rows = await conn.fetch(
            "SELECT ciphertext, nonce FROM inbox WHERE message_id = ANY($1::uuid[])", message_ids
        )
    finally:
        await conn.close()
    return [bytes(r["ciphertext"]) + bytes(r["nonce"]) for r in rows]


async def test_a_delete_erases_every_copy_and_reaches_every_device(two_hub_nodes, test_env):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    await make_contacts(api, alice, bob)  # more than a request's 3 messages
    alice_phone = await Phone(alice).connect(node_a.url)
    alice_laptop = await Phone(alice, "laptop").connect(node_b.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    bob_tablet = await Phone(bob, "tablet").connect(node_a.url)
    carol_phone = await Phone(carol).connect(node_a.url)
    phones = (alice_laptop, bob_phone, bob_tablet)
    try:
        original = direct(alice, bob, "wrong chat!")
        kept = direct(alice, bob, "this one stays")
        for payload in (original, kept):
            assert (await alice_phone.call("message:send", payload))["ok"]
        edit = {"id": str(uuid.uuid4()), "replaces": original["id"], **seal(alice, bob, "oops")}
        assert (await alice_phone.call("message:edit", edit))["ok"]
        for phone in phones:
            for _ in range(3):
                await phone.next("message:new")
        refusals = [(bob_phone, "forbidden"), (carol_phone, "not_found")]
        for phone, code in refusals:
            refused = await phone.call("message:delete", {"id": original["id"]})
            assert refused["ok"] is False and refused["error"]["code"] == code, refused
        refused = await alice_phone.call("message:delete", {"id": edit["id"]})
        assert refused["error"]["code"] == "invalid_payload", refused

        ack = await alice_phone.call("message:delete", {"id": original["id"]})
        assert ack == {"ok": True, "id": original["id"]}
        for phone in phones:
            deleted = await phone.next("message:deleted")
            assert deleted["id"] == original["id"] and deleted["by"] == alice.id
            assert deleted["seq"] == 4
        assert await stored_ciphertexts(test_env, [original["id"], edit["id"]]) == [b""] * 4
        assert all(await stored_ciphertexts(test_env, [kept["id"]]))
        # Deleting again answers ok and changes nothing (no second tombstone).
        assert await alice_phone.call("message:delete", {"id": original["id"]}) == ack
        later = direct(alice, bob, "after")
        assert (await alice_phone.call("message:send", later))["ok"]
        assert (await bob_phone.next("message:new"))["seq"] == 5

        synced = (await bob_tablet.call("message:sync", {"after": 0}))["messages"]
        assert synced[0] == {
            "id": original["id"],
            "from": alice.id,
            "deleted": True,
            "ts": synced[0]["ts"],
            "seq": 1,
        }
        assert synced[1]["id"] == kept["id"] and synced[1]["ciphertext"] == kept["ciphertext"]
        assert synced[2]["deleted"] is True and synced[2]["id"] == edit["id"]
        assert synced[3] == {"id": original["id"], "by": alice.id, "ts": synced[3]["ts"], "seq": 4}
        listed = await history(api, alice, bob.id)
        assert [m["id"] for m in listed] == [later["id"], kept["id"], original["id"]]
        assert listed[2] == {**synced[0], "seq": listed[2]["seq"]}
        for payload in (
            {"id": str(uuid.uuid4()), "replaces": original["id"], **seal(alice, bob, "x")},
        ):
            assert (await alice_phone.call("message:edit", payload))["error"]["code"] == "not_found"
        reaction = direct(bob, alice, "👍", relatesTo={"type": "reaction", "id": original["id"]})
        assert (await bob_phone.call("message:send", reaction))["error"]["code"] == "not_found"
    finally:
        await alice_phone.close()
        await carol_phone.close()
        for phone in phones:
            await phone.close()


async def test_a_band_admin_deletes_a_members_message_and_a_member_may_not(hub_node, test_env):
    api = Api(hub_node.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = (await create_band(api, alice, bob, carol))["id"]
    bob_phone = await Phone(bob).connect(hub_node.url)
    carol_phone = await Phone(carol).connect(hub_node.url)
    alice_phone = await Phone(alice).connect(hub_node.url)
    try:
        envelopes = [{"to": m.id, **seal(bob, m, "spam")} for m in (alice, carol)]
        message = {"id": str(uuid.uuid4()), "band": band, "envelopes": envelopes}
        assert (await bob_phone.call("message:send", message))["ok"]
        await carol_phone.next("message:new")
        refused = await carol_phone.call("message:delete", {"id": message["id"]})
        assert refused["error"]["code"] == "forbidden", refused
        assert (await alice_phone.call("message:delete", {"id": message["id"]}))["ok"]
        for phone in (bob_phone, carol_phone):
            deleted = await phone.next("message:deleted")
            assert deleted["id"] == message["id"] and deleted["by"] == alice.id
        assert await stored_ciphertexts(test_env, [message["id"]]) == [b""] * 3
    finally:
        for phone in (alice_phone, bob_phone, carol_phone):
            await phone.close()
