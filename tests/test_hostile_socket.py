"""Hostile socket input (issue 7): property-based payloads at every client event, malformed
packets, unknown and reserved event names, and floods. The hub answers every one with an
error ack whose code is documented, stays up for the same socket, and stores nothing.

One hub node serves the module (see ``tests/module_hub.py``) with a per-connection event
budget large enough that only the flood test, on a node of its own, meets the limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import engineio
import pytest
import pytest_asyncio
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from socketio import packet

from handlers.engineio_internals import MALFORMED_EVENT
from tests.support import Account, Api, HubNode, Phone, seal, start_hub_node
from tests.support.bands import create_band
from tests.support.module_hub import shared_hub
from tests.support.servers import Servers
from tests.support.servers import TestEnv as HubEnv

# Every client event of docs/protocol.md, and every error code it documents.
CLIENT_EVENTS = (
    "message:send",
    "message:edit",
    "message:delete",
    "message:sync",
    "message:delivered",
    "message:read",
    "typing",
    "presence:subscribe",
    "presence:unsubscribe",
    "session:refresh",
    "call:invite",
    "call:accept",
    "call:decline",
    "call:cancel",
    "call:hangup",
)
DOCUMENTED_CODES = frozenset(
    {
        "invalid_payload",
        "too_large",
        "unauthorized",
        "forbidden",
        "not_found",
        "conflict",
        "rate_limited",
        "unavailable",
        "not_configured",
        "attachment_unusable",
        "internal",
    }
)
STORED_TABLES = (
    "messages",
    "inbox",
    "direct_conversations",
    "calls",
    "call_participants",
    "bands",
    "band_members",
    "attachments",
)
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


# A client that can send what python-socketio's own client would refuse to encode.


@dataclass(frozen=True)
class Deep:
    """A JSON value nested ``depth`` lists deep (far past any JSON library's recursion
    limit), spliced into the packet text as written."""

    depth: int


class SplicingJson:
    """``json`` for the test client: ``Deep`` values become placeholders, then raw text."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        spliced: dict[str, str] = {}

        def placeholder(value: Any) -> str:
            if not isinstance(value, Deep):
                raise TypeError(f"cannot encode {type(value).__name__}")
            key = f"@@deep-{uuid.uuid4().hex}@@"
            spliced[json.dumps(key)] = "[" * value.depth + "]" * value.depth
            return key

        text = json.dumps(obj, default=placeholder, **kwargs)
        for key, raw in spliced.items():
            text = text.replace(key, raw)
        return text

    loads = staticmethod(json.loads)


class SplicingPacket(packet.Packet):  # type: ignore[misc]
    json = SplicingJson


class HostilePhone(Phone):
    """A phone that sends anything: deep JSON, binary attachments, raw packet text."""

    def __init__(self, account: Account, device: str = "hostile") -> None:
        super().__init__(account, device)
        self.client = socketio.AsyncClient(reconnection=False, serializer=SplicingPacket)
        self.client.on("*", self._record)

    async def raw(self, text: str, timeout: float = 5) -> Any:
        """Send ``42<ack id><text>`` as it is and wait for the ack's arguments."""
        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*args: Any) -> None:
            if not answered.done():
                answered.set_result(args[0] if len(args) == 1 else list(args))

        ack_id = self.client._generate_ack_id("/", on_ack)
        await self.client.eio.send(f"{packet.EVENT}{ack_id}{text}")
        return await asyncio.wait_for(answered, timeout)


def received_total(phone: Phone) -> int:
    return sum(phone.pending(event) for event in list(phone._queues))


async def stored_rows(db: asyncpg.Connection) -> dict[str, int]:
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in STORED_TABLES}


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


# The world every property test shares.


@dataclass
class World:
    env: HubEnv
    node: HubNode
    alice: Account
    bob: Account
    band_id: str
    attacker: HostilePhone
    recipient: Phone
    db: asyncpg.Connection
    baseline: dict[str, int]


@pytest_asyncio.fixture(scope="module")
async def world(servers: Servers) -> AsyncIterator[World]:
    async with shared_hub(
        servers, SOCKET_EVENTS_PER_SECOND="100000", SOCKET_EVENT_BURST="100000"
    ) as (env, node):
        api = Api(node.url)
        alice, bob = await api.register_many("alice", "bob")
        band = await create_band(api, alice, bob)
        attacker = HostilePhone(alice)
        await attacker.connect(node.url)
        recipient = await Phone(bob).connect(node.url)
        db = await asyncpg.connect(env.database_url)
        world = World(env, node, alice, bob, band["id"], attacker, recipient, db, {})
        world.baseline = await stored_rows(db)
        try:
            yield world
        finally:
            await attacker.close()
            await recipient.close()
            await db.close()


async def assert_unharmed(world: World) -> None:
    """The same socket still works, the recipient got nothing, and nothing was stored."""
    assert world.attacker.client.connected
    sync = await world.attacker.call("message:sync", {"after": 0})
    assert sync == {"ok": True, "messages": [], "more": False}
    watched = await world.attacker.call("presence:subscribe", {"users": [world.bob.id]})
    assert watched["ok"] is True and watched["presence"][0]["userId"] == world.bob.id
    assert (await world.recipient.call("message:sync", {"after": 0}))["messages"] == []
    assert received_total(world.recipient) == 0
    assert await stored_rows(world.db) == world.baseline


def assert_refused(ack: Any, codes: frozenset[str]) -> None:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    error = ack["error"]
    assert error["code"] in codes, ack
    assert error["code"] in DOCUMENTED_CODES and error["code"] != "internal", ack
    assert isinstance(error["message"], str) and error["message"], ack


# Hostile values, each invalid for the kind of field it replaces, with the codes it may get.

Hostile = tuple[Any, frozenset[str]]
INVALID = frozenset({"invalid_payload"})
TOO_LARGE = frozenset({"too_large"})

deep_values = st.sampled_from([Deep(1_100), Deep(10_000)])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
)
containers = st.one_of(
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    st.binary(min_size=1, max_size=32),
)
huge_texts = st.integers(min_value=5_000, max_value=200_000).map(lambda n: "Z" * n)


def not_a(kind: str) -> st.SearchStrategy[Any]:
    """Values of the wrong JSON type for a field of ``kind``: "str", "int", "optional int"
    or "list" (strict parsing: a float or a bool is never an int, a number never a string)."""
    wrong: list[st.SearchStrategy[Any]] = [
        deep_values,
        st.dictionaries(st.text(max_size=8), scalars, max_size=3),
        st.binary(min_size=1, max_size=32),
        st.booleans(),
        st.floats(allow_nan=False),
    ]
    if kind != "str":
        wrong.append(st.text(max_size=10))
    if kind not in ("int", "optional int"):
        wrong.append(st.integers())
    if kind != "list":
        wrong.append(st.lists(scalars, max_size=3))
    if kind != "optional int":
        wrong.append(st.none())
    return st.one_of(wrong)


def with_codes(values: st.SearchStrategy[Any], codes: frozenset[str]) -> st.SearchStrategy[Hostile]:
    return values.map(lambda v: (v, codes))


bad_uuid_text = st.one_of(
    st.text(max_size=40).filter(lambda s: not UUID_RE.match(s)),
    st.uuids().map(lambda u: str(u) + "0"),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: str(u).replace("-", "")),
    huge_texts,
)
not_base64 = st.text(min_size=1, max_size=60).filter(lambda s: _not_base64(s))


def _not_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return True
    return False


def hostile_for(kind: str) -> st.SearchStrategy[Hostile]:
    if kind == "uuid":
        return st.one_of(with_codes(not_a("str"), INVALID), with_codes(bad_uuid_text, INVALID))
    if kind == "ciphertext":
        return st.one_of(
            with_codes(not_a("str"), INVALID),
            with_codes(not_base64, INVALID),
            with_codes(st.integers(0, 15).map(b64), INVALID),
            with_codes(st.integers(65_537, 66_000).map(b64), TOO_LARGE),
            with_codes(st.integers(90_000, 200_000).map(lambda n: "!" * n), TOO_LARGE),
        )
    if kind == "nonce":
        return st.one_of(
            with_codes(not_a("str"), INVALID),
            with_codes(not_base64, INVALID),
            with_codes(st.integers(0, 200).filter(lambda n: n != 24).map(b64), INVALID),
            with_codes(huge_texts, INVALID),
        )
    if kind == "after":
        return st.one_of(
            with_codes(not_a("int"), INVALID),
            with_codes(st.integers(max_value=-1), INVALID),
            with_codes(st.integers(min_value=2**62 + 1, max_value=2**64), INVALID),
        )
    if kind == "limit":
        return st.one_of(
            with_codes(not_a("optional int"), INVALID),
            with_codes(st.integers(max_value=0) | st.integers(min_value=1001), INVALID),
        )
    if kind == "state":
        return literal_hostile({"start", "stop"})
    if kind == "instance":
        return literal_hostile({"main", "meet", "chat"})
    if kind == "media":
        return literal_hostile({"audio", "video"})
    if kind == "token":
        return st.one_of(
            with_codes(not_a("str"), INVALID),
            st.just(("", INVALID)),
            with_codes(st.integers(4_097, 20_000).map(lambda n: "t" * n), TOO_LARGE),
            # Text of the right size is a token to check: refused as not valid.
            with_codes(st.text(min_size=1, max_size=200), frozenset({"unauthorized"})),
        )
    if kind.startswith("uuids:"):
        most = int(kind.split(":")[1])
        return st.one_of(
            with_codes(not_a("list"), INVALID),
            st.just(([], INVALID)),
            with_codes(
                st.tuples(
                    st.lists(st.uuids().map(str), max_size=3), bad_uuid_text | not_a("str")
                ).map(lambda t: [*t[0], t[1]]),
                INVALID,
            ),
            with_codes(
                st.integers(most + 1, most + 40).map(
                    lambda n: [str(uuid.uuid4()) for _ in range(n)]
                ),
                TOO_LARGE,
            ),
        )
    raise AssertionError(kind)


def literal_hostile(allowed: set[str]) -> st.SearchStrategy[Hostile]:
    return st.one_of(
        with_codes(not_a("str"), INVALID),
        with_codes(st.text(max_size=20).filter(lambda s: s not in allowed), INVALID),
        with_codes(st.sampled_from(sorted(allowed)).map(str.upper), INVALID),
    )


# Each event: a valid payload and the kind of each of its fields.

Template = tuple[dict[str, Any], dict[str, str]]


def template(event: str, world: World) -> Template:
    bob, band = world.bob, world.band_id
    any_id = str(uuid.uuid4())
    if event == "message:send":
        body = {"id": any_id, "to": bob.id, **seal(world.alice, bob, "hi")}
        return body, {"id": "uuid", "to": "uuid", "ciphertext": "ciphertext", "nonce": "nonce"}
    if event == "message:edit":
        body = {"id": any_id, "replaces": str(uuid.uuid4()), **seal(world.alice, bob, "hi")}
        return body, {
            "id": "uuid",
            "replaces": "uuid",
            "ciphertext": "ciphertext",
            "nonce": "nonce",
        }
    if event == "message:delete":
        return {"id": any_id}, {"id": "uuid"}
    if event == "message:sync":
        return {"after": 0, "limit": 10}, {"after": "after", "limit": "limit"}
    if event in ("message:delivered", "message:read"):
        return {"ids": [any_id]}, {"ids": "uuids:500"}
    if event == "typing":
        return {"band": band, "state": "start"}, {"band": "uuid", "state": "state"}
    if event.startswith("presence:"):
        return {"users": [bob.id]}, {"users": "uuids:200"}
    if event == "session:refresh":
        return {"token": world.alice.access_token}, {"token": "token"}
    if event == "call:invite":
        body = {"to": bob.id, "instance": "main", "media": "audio"}
        return body, {"to": "uuid", "instance": "instance", "media": "media"}
    return {"call": any_id}, {"call": "uuid"}


@dataclass(frozen=True, repr=False)
class Attempt:
    """What one example sends: a payload and extra arguments (``args`` None: none at all)."""

    args: tuple[Any, ...] | None
    codes: frozenset[str]
    what: str

    def __repr__(self) -> str:
        return f"Attempt({self.what}, expecting {sorted(self.codes)})"


def band_message_template(world: World) -> Template:
    envelope = {"to": world.bob.id, **seal(world.alice, world.bob, "hi")}
    return {"id": str(uuid.uuid4()), "band": world.band_id, "envelopes": [envelope]}, {
        "id": "uuid",
        "band": "uuid",
    }


def hostile_attempts(event: str, world: World) -> st.SearchStrategy[Attempt]:
    body, kinds = template(event, world)

    def field(draw_pair: tuple[str, Hostile]) -> Attempt:
        name, (value, codes) = draw_pair
        return Attempt(({**body, name: value},), codes, f"{name}={_short(value)}")

    field_changes = (
        st.sampled_from(sorted(kinds))
        .flatmap(lambda name: hostile_for(kinds[name]).map(lambda hostile: (name, hostile)))
        .map(field)
    )
    unknown_keys = st.tuples(
        st.text(min_size=1, max_size=30).filter(lambda k: k not in kinds and k not in _ALL_FIELDS),
        scalars | containers | deep_values,
    ).map(lambda kv: Attempt(({**body, kv[0]: kv[1]},), INVALID, f"unknown key {kv[0]!r}"))
    missing_keys = st.sampled_from(sorted(k for k in kinds if k != "limit")).map(
        lambda k: Attempt(({n: v for n, v in body.items() if n != k},), INVALID, f"without {k}")
    )
    not_objects = (
        scalars
        | st.lists(scalars, max_size=3)
        | st.binary(max_size=16)
        | st.text(max_size=20)
        | deep_values
    ).map(lambda v: Attempt((v,), INVALID, f"payload {_short(v)}"))
    more_args = st.lists(scalars | containers, min_size=1, max_size=3).map(
        lambda extra: Attempt((body, *extra), INVALID, f"{1 + len(extra)} arguments")
    )
    no_args = st.just(Attempt(None, INVALID, "no payload"))
    strategies = [field_changes, unknown_keys, missing_keys, not_objects, more_args, no_args]
    if event == "message:send":
        strategies.append(band_envelope_attempts(world))
        strategies.append(relation_attempts(body))
    if event in ("message:send", "message:edit"):
        strategies.append(attachment_attempts(body))
    return st.one_of(strategies)


def attachment_attempts(body: dict[str, Any]) -> st.SearchStrategy[Attempt]:
    """``attachments`` that is not a list of at most 10 distinct ids of the sender's uploads:
    malformed lists, too many, the same id twice, or ids of nothing uploaded (``not_found``
    for a send; an edit of a missing original is ``not_found`` first as well)."""

    def attempt(value: Any, codes: frozenset[str], what: str) -> Attempt:
        return Attempt(({**body, "attachments": value},), codes, f"attachments {what}")

    some = str(uuid.uuid4())
    return st.one_of(
        not_a("list")
        .filter(lambda v: v is not None)  # no attachments at all is a valid send
        .map(lambda v: attempt(v, INVALID, _short(v))),
        hostile_for("uuid").map(lambda h: attempt([h[0]], h[1], f"[{_short(h[0])}]")),
        st.integers(11, 40).map(
            lambda n: attempt([str(uuid.uuid4()) for _ in range(n)], TOO_LARGE, f"{n} ids")
        ),
        st.just(attempt([some, some], INVALID, "the same id twice")),
        st.lists(st.uuids().map(str), min_size=1, max_size=10, unique=True).map(
            lambda ids: attempt(ids, frozenset({"not_found"}), f"{len(ids)} unknown ids")
        ),
    )


def relation_attempts(body: dict[str, Any]) -> st.SearchStrategy[Attempt]:
    """``relatesTo`` that is not ``{type: "reaction"|"reply", id: <uuid>}``."""
    good = {"type": "reply", "id": str(uuid.uuid4())}

    def attempt(value: Any, what: str) -> Attempt:
        return Attempt(({**body, "relatesTo": value},), INVALID, f"relatesTo {what}")

    return st.one_of(
        (scalars.filter(lambda v: v is not None) | st.lists(scalars, max_size=3)).map(
            lambda v: attempt(v, _short(v))
        ),
        literal_hostile({"reaction", "reply"}).map(
            lambda h: attempt({**good, "type": h[0]}, f"type {_short(h[0])}")
        ),
        hostile_for("uuid").map(lambda h: attempt({**good, "id": h[0]}, f"id {_short(h[0])}")),
        st.sampled_from(["type", "id"]).map(
            lambda k: attempt({n: v for n, v in good.items() if n != k}, f"without {k}")
        ),
        st.just(attempt({**good, "extra": 1}, "with an unknown key")),
    )


def band_envelope_attempts(world: World) -> st.SearchStrategy[Attempt]:
    body, _ = band_message_template(world)
    envelope = body["envelopes"][0]
    envelope_kinds = {"to": "uuid", "ciphertext": "ciphertext", "nonce": "nonce"}

    def change(pair: tuple[str, Hostile]) -> Attempt:
        name, (value, codes) = pair
        return Attempt(
            ({**body, "envelopes": [{**envelope, name: value}]},), codes, f"envelope {name}"
        )

    one_bad = (
        st.sampled_from(sorted(envelope_kinds))
        .flatmap(
            lambda name: hostile_for(envelope_kinds[name]).map(lambda hostile: (name, hostile))
        )
        .map(change)
    )
    too_many = st.integers(256, 300).map(
        lambda n: Attempt(({**body, "envelopes": [envelope] * n},), TOO_LARGE, f"{n} envelopes")
    )
    empty = st.just(Attempt(({**body, "envelopes": []},), INVALID, "no envelopes"))
    not_list = not_a("list").map(
        lambda v: Attempt(({**body, "envelopes": v},), INVALID, f"envelopes={_short(v)}")
    )
    mixed = st.just(
        Attempt(({**body, "ciphertext": envelope["ciphertext"]},), INVALID, "band and ciphertext")
    )
    return st.one_of(one_bad, too_many, empty, not_list, mixed)


_ALL_FIELDS = frozenset(
    {"id", "to", "ciphertext", "nonce", "band", "envelopes", "after", "limit", "ids", "state"}
    | {"replaces", "relatesTo", "attachments"}
    | {"users", "token", "instance", "media", "call"}
)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(text)} chars)"


async def send(phone: HostilePhone, event: str, attempt: Attempt) -> Any:
    """python-socketio spreads a tuple into arguments and sends None as no argument."""
    if attempt.args is None:
        return await phone.client.call(event, timeout=10)
    if len(attempt.args) == 1 and not isinstance(attempt.args[0], tuple | type(None)):
        return await phone.client.call(event, attempt.args[0], timeout=10)
    return await phone.client.call(event, attempt.args, timeout=10)


@pytest.mark.parametrize("event", CLIENT_EVENTS)
@EXAMPLES
@given(data=st.data())
async def test_hostile_payloads_get_a_documented_error_and_change_nothing(
    world: World, event: str, data: st.DataObject
) -> None:
    attempt = data.draw(hostile_attempts(event, world), label="attempt")
    ack = await send(world.attacker, event, attempt)
    assert_refused(ack, attempt.codes)
    await assert_unharmed(world)


@EXAMPLES
@given(name=st.text(max_size=80).filter(lambda n: n not in CLIENT_EVENTS and n != MALFORMED_EVENT))
async def test_unknown_event_names_are_not_found_and_reserved_ones_refused(
    world: World, name: str
) -> None:
    ack = await world.attacker.call(name, {"x": 1})
    if name in ("connect", "disconnect", "*"):
        assert_refused(ack, INVALID)
    else:
        assert_refused(ack, frozenset({"not_found"}))


@pytest.mark.parametrize("reserved", ["connect", "disconnect", "*"])
async def test_a_client_event_named_like_a_server_handler_changes_nothing(
    world: World, reserved: str
) -> None:
    # Before the fix, "disconnect" unregistered the live socket ("connection is not
    # registered" from then on), "connect" registered it again under any valid token, and
    # "*" reached the catch-all handler with the wrong arguments (no ack, a traceback).
    ack = await world.attacker.call(
        reserved, ({}, {"token": world.bob.access_token, "device": "x"})
    )
    assert_refused(ack, INVALID)
    await assert_unharmed(world)


MALFORMED_PACKETS = [
    "",
    "null",
    "[]",
    "{}",
    '{"message:sync": {"after": 0}}',
    '"message:sync"',
    "[null]",
    '[42, {"after": 0}]',
    '[["message:sync"], {"after": 0}]',
    '["message:sync", {"after": 0}',
    '["message:sync", {"after": 0}]]',
    '["message:sync", {after: 0}]',
    "[" * 10_000 + "]" * 10_000,
    '["message:sync", ' + "{" * 5_000 + "}" * 5_000 + "]",
    '["message:sync", ' + '{"a":' * 2_000 + "1" + "}" * 2_000 + "]",
    "\ufeff[]",
    "not json at all",
]


@pytest.mark.parametrize("text", MALFORMED_PACKETS, ids=lambda t: _short(t)[:30])
async def test_a_malformed_packet_is_answered_invalid_payload(world: World, text: str) -> None:
    assert_refused(await world.attacker.raw(text), INVALID)
    assert (await world.attacker.call("message:sync", {"after": 0}))["ok"] is True


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=6), children, max_size=4
    )


json_values = st.recursive(scalars | st.text(max_size=10), _nested, max_leaves=20)


def _answerable(value: Any) -> bool:
    """Not a named event, and not a number (whose digits would run into the ack id)."""
    named = isinstance(value, list) and bool(value) and isinstance(value[0], str)
    return not named and json.dumps(value)[0] not in "-0123456789"


@EXAMPLES
@given(value=json_values.filter(_answerable))
async def test_any_packet_that_is_not_a_named_event_is_answered(world: World, value: Any) -> None:
    assert_refused(await world.attacker.raw(json.dumps(value)), INVALID)


@EXAMPLES
@given(
    text=st.text(min_size=1, max_size=200).filter(lambda t: t[0] not in "/-" and not t[0].isdigit())
)
async def test_any_text_packet_is_answered_without_a_crash(world: World, text: str) -> None:
    # After "42<ack id>", a digit, "-" or "/" would be read as part of the id, an attachment
    # count or a namespace: the packet would carry no ack id to answer. Text that happens to
    # be ["name", ...] JSON is an event like any other.
    ack = await world.attacker.raw(text)
    assert_refused(ack, INVALID | frozenset({"not_found"}))


async def test_garbage_before_the_handshake_is_refused_or_dropped_quietly(world: World) -> None:
    """Engine.IO is open to anyone: what comes before a Socket.IO connect is answered (a
    connect whose auth does not parse is refused like one without auth) or dropped, and never
    writes a traceback to the hub's log."""
    client = engineio.AsyncClient()
    answers: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(data: str) -> None:
        await answers.put(data)

    client.on("message", on_message)
    await client.connect(world.node.url, transports=["websocket"], engineio_path="socket.io")
    try:
        for garbage in ("9", "4{}", "7", "garbage", "1{", "3[", '2["message:sync"]', "5-"):
            await client.send(garbage)
        for broken_connect in ("0{", "0" + "[" * 2_000, '0{"token": '):
            await client.send(broken_connect)
            answer = await asyncio.wait_for(answers.get(), 5)
            assert answer.startswith("4"), answer
            refusal = json.loads(answer[1:])
            assert refusal["message"] == "unauthorized"
            assert refusal["data"]["code"] == "invalid_handshake"
        assert answers.empty()
    finally:
        await client.disconnect()
    assert "Traceback" not in world.node.log(), world.node.log()[-3000:]


async def test_after_all_that_the_socket_still_sends_and_calls(world: World) -> None:
    await assert_unharmed(world)
    assert "Traceback" not in world.node.log(), world.node.log()[-3000:]
    message_id = str(uuid.uuid4())
    ack = await world.attacker.call(
        "message:send", {"id": message_id, "to": world.bob.id, **seal(world.alice, world.bob, "ok")}
    )
    assert ack["ok"] is True and ack["id"] == message_id
    assert (await world.recipient.next("message:new"))["id"] == message_id
    ring = await world.attacker.call(
        "call:invite", {"to": world.bob.id, "instance": "main", "media": "audio"}
    )
    assert ring["ok"] is True and ring["call"]["status"] == "ringing", ring
    assert (await world.recipient.next("call:incoming"))["call"]["id"] == ring["call"]["id"]
    assert (await world.attacker.call("call:cancel", {"call": ring["call"]["id"]}))["ok"] is True


# Floods, on a node with a small budget.


async def test_a_flood_of_any_events_is_rate_limited_then_the_socket_works_again(
    test_env: HubEnv, tmp_path: Path
) -> None:
    env = test_env.hub_env(SOCKET_EVENTS_PER_SECOND="5", SOCKET_EVENT_BURST="20")
    node = await start_hub_node(env, tmp_path / "flood", "flood")
    try:
        api = Api(node.url)
        alice, bob = await api.register_many("alice", "bob")
        phone = HostilePhone(alice)
        await phone.connect(node.url)
        try:
            kinds: list[Callable[[], Any]] = [
                lambda: phone.call("message:sync", {"after": 0}),
                lambda: phone.call("typing", {"to": "nobody", "state": "start"}),
                lambda: phone.call("no:such:event", {}),
                lambda: phone.raw("[]"),
                lambda: phone.call("message:send", {"id": "x"}),
            ]
            acks = await asyncio.gather(*(kinds[i % len(kinds)]() for i in range(100)))
            limited = [a for a in acks if not a["ok"] and a["error"]["code"] == "rate_limited"]
            # The burst passes (as errors or answers), everything after it is limited, whatever
            # the event: unknown names and malformed packets count against the same budget.
            assert 70 <= len(limited) <= 80, [a.get("error", {}).get("code") for a in acks]
            for ack in limited:
                assert ack["error"]["retryable"] is True
                assert ack["error"]["details"]["retryAfter"] >= 1
            assert {a["error"]["code"] for a in acks if not a["ok"]} <= {
                "rate_limited",
                "invalid_payload",
                "not_found",
            }
            assert phone.client.connected
            await asyncio.sleep(1.2)  # the documented retryAfter: tokens come back at 5/s
            started = time.monotonic()
            assert (await phone.call("message:sync", {"after": 0}))["ok"] is True
            assert time.monotonic() - started < 2
            sent = await phone.call(
                "message:send", {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "x")}
            )
            assert sent["ok"] is True
        finally:
            await phone.close()
    finally:
        await node.stop()
