"""Band conversations: one envelope per other current member, delivered to each member.

The band is made over REST (``POST /api/bands`` and ``POST /api/bands/:id/members``), as the
app makes it.
"""

from __future__ import annotations

import uuid

from tests.support import Api, Phone, open_box, seal
from tests.support.bands import create_band


async def test_band_message_reaches_every_member_with_their_own_envelope(two_hub_nodes):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    band = (await create_band(api, alice, bob, carol))["id"]
    alice_phone = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    carol_phone = await Phone(carol).connect(node_a.url)
    try:
        envelopes = [{"to": m.id, **seal(alice, m, f"rehearsal, {m.name}")} for m in (bob, carol)]
        message_id = str(uuid.uuid4())
        ack = await alice_phone.call(
            "message:send", {"id": message_id, "band": band, "envelopes": envelopes}
        )
        assert ack["ok"], ack
        for phone, member in ((bob_phone, bob), (carol_phone, carol)):
            received = await phone.next("message:new")
            assert (
                received["band"] == band and received["from"] == alice.id and received["seq"] == 1
            )
            assert "to" not in received
            assert open_box(member, alice.public_key_b64, received) == f"rehearsal, {member.name}"
        typing = await bob_phone.call("typing", {"band": band, "state": "start"})
        assert typing["ok"]
        assert (await alice_phone.next("typing"))["band"] == band
        assert (await carol_phone.next("typing"))["from"] == bob.id
    finally:
        for phone in (alice_phone, bob_phone, carol_phone):
            await phone.close()


async def test_band_message_missing_a_member_is_refused_and_not_stored(hub_node):
    api = Api(hub_node.url)
    alice, bob, carol, outsider = await api.register_many("alice", "bob", "carol", "outsider")
    band = (await create_band(api, alice, bob, carol))["id"]
    alice_phone = await Phone(alice).connect(hub_node.url)
    outsider_phone = await Phone(outsider).connect(hub_node.url)
    try:
        only_bob = [{"to": bob.id, **seal(alice, bob, "psst")}]
        ack = await alice_phone.call(
            "message:send", {"id": str(uuid.uuid4()), "band": band, "envelopes": only_bob}
        )
        assert ack["ok"] is False and ack["error"]["code"] == "conflict"
        assert ack["error"]["details"] == {"missing": [carol.id], "extra": []}
        extra = [
            *only_bob,
            {"to": carol.id, **seal(alice, carol, "x")},
            {"to": outsider.id, **seal(alice, outsider, "x")},
        ]
        ack = await alice_phone.call(
            "message:send", {"id": str(uuid.uuid4()), "band": band, "envelopes": extra}
        )
        assert ack["error"]["details"] == {"missing": [], "extra": [outsider.id]}
        intruder = [{"to": m.id, **seal(outsider, m, "let me in")} for m in (alice, bob, carol)]
        ack = await outsider_phone.call(
            "message:send", {"id": str(uuid.uuid4()), "band": band, "envelopes": intruder}
        )
        assert ack["error"]["code"] == "not_found"  # to a non-member, as if there were no band
        assert (await alice_phone.call("message:sync", {"after": 0}))["messages"] == []
    finally:
        await alice_phone.close()
        await outsider_phone.close()
