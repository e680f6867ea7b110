"""The frames hub nodes exchange: one codec, every kind round-trips, the wire stays small."""

from __future__ import annotations

import orjson

from hub.fanout import (
    ConnectionsEnded,
    Delivery,
    PresenceRevocation,
    SessionsEnded,
    UserPresence,
    decode_frames,
    encode_frames,
)


def test_every_frame_kind_comes_back_as_it_left_and_in_order() -> None:
    frames = [
        Delivery("u1", "message:new", {"id": "m1", "seq": 3}, "conn-1"),
        UserPresence("u2", "offline", 1_764_700_000_000),
        Delivery("u3", "typing", {"from": "u1", "to": "u3", "state": "start"}),
        PresenceRevocation({"viewer": ["u4", "u5"]}),
        UserPresence("u2", "online", None),
        SessionsEnded("u6", ["s1", "s2"], "session:revoked", "logout"),
        ConnectionsEnded(["c1"], "session:replaced", "new_connection"),
    ]
    assert decode_frames(encode_frames(frames)) == frames


def test_a_delivery_frame_is_positional_on_the_wire() -> None:
    """The hot path: no field names repeated per frame."""
    wire = orjson.loads(encode_frames([Delivery("u1", "message:new", {"id": "m1"}, None)]))
    assert wire == [["d", "u1", "message:new", {"id": "m1"}, None]]


def test_a_frame_of_a_kind_this_node_does_not_know_is_left_out() -> None:
    """A newer node may send a kind this one does not know yet (rolling upgrade)."""
    message = orjson.dumps([["zz", 1, 2], ["p", "u1", "online", None]])
    assert decode_frames(message) == [UserPresence("u1", "online", None)]


def test_an_empty_batch_is_an_empty_message() -> None:
    assert decode_frames(encode_frames([])) == []
