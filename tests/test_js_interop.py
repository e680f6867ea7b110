"""The mobile app's own JavaScript stack against a real hub: socket.io-client v4 for the
socket, tweetnacl 1.0.3 for the boxes. ``tests/js/phone.mjs`` is the JS phone; the Python
``Phone`` and PyNaCl are the other side. Needs Node.js and ``npm ci`` (``package-lock.json``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import nacl.secret
import pytest
import pytest_asyncio

from tests.support import (
    ROOT,
    Account,
    Api,
    HubNode,
    Phone,
    open_box,
    seal,
    two_nodes,
)
from tests.support.bands import make_contacts

PHONE_JS = ROOT / "tests" / "js" / "phone.mjs"
NODE_PACKAGES = ("socket.io-client", "tweetnacl")
PROCESS_TIMEOUT = 25  # phone.mjs gives up by itself after 15 s


def node_binary() -> str:
    """Node and the locked packages must be there: a skipped interop test hides a broken setup."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not on PATH: install Node.js 20, then run `npm ci` in " + str(ROOT))
    missing = [
        p for p in NODE_PACKAGES if not (ROOT / "node_modules" / p / "package.json").exists()
    ]
    if missing:
        pytest.fail(
            f"node_modules is missing {', '.join(missing)}: run `npm ci` in {ROOT} "
            "(it installs the versions locked in package-lock.json)"
        )
    return node


class JsPhone:
    """One run of ``phone.mjs``: the job goes in on stdin, JSON lines come out on stdout."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, node: str, job: dict[str, Any], stderr_path: Path) -> JsPhone:
        with open(stderr_path, "wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                node,
                str(PHONE_JS),
                cwd=str(ROOT),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "NODE_NO_WARNINGS": "1"},
                limit=16 * 1024 * 1024,
            )
        assert process.stdin is not None
        process.stdin.write(json.dumps(job).encode())
        await process.stdin.drain()
        process.stdin.close()
        return cls(process, stderr_path)

    def transcript(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        lines = "\n".join(json.dumps(line, ensure_ascii=False) for line in self.lines)
        return f"phone.mjs said:\n{lines}\nstderr:\n{stderr}"

    async def _read_line(self, timeout: float) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no output from phone.mjs in {timeout} s\n{self.transcript()}"
            ) from None
        if not raw:
            return None
        try:
            line: dict[str, Any] = json.loads(raw)
        except ValueError:
            raise AssertionError(f"not a JSON line: {raw!r}\n{self.transcript()}") from None
        self.lines.append(line)
        return line

    async def next(self, event: str, timeout: float = 10) -> dict[str, Any]:
        """The next line for ``event``; a failure or the end of the script fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            line = await self._read_line(max(0.1, deadline - time.monotonic()))
            if line is None:
                await self.process.wait()
                raise AssertionError(
                    f"phone.mjs exited ({self.process.returncode}) before {event!r}\n"
                    + self.transcript()
                )
            if line["event"] == event:
                return line
            if line["event"] in ("error", "timeout", "connect_error", "disconnect", "done"):
                raise AssertionError(f"waiting for {event!r}, got {line}\n{self.transcript()}")

    async def finish(self, timeout: float = PROCESS_TIMEOUT) -> list[dict[str, Any]]:
        """Read to the end and wait for the exit; a non-zero exit fails the test."""
        deadline = time.monotonic() + timeout
        while await self._read_line(max(0.1, deadline - time.monotonic())) is not None:
            pass
        try:
            code = await asyncio.wait_for(
                self.process.wait(), max(0.1, deadline - time.monotonic())
            )
        except TimeoutError:
            raise AssertionError(f"phone.mjs did not exit\n{self.transcript()}") from None
        assert code == 0, f"phone.mjs exited with {code}\n{self.transcript()}"
        return self.lines

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == event]

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


StartJsPhone = Callable[..., Awaitable[JsPhone]]


@pytest_asyncio.fixture
async def js_phone(tmp_path: Path) -> AsyncIterator[StartJsPhone]:
    """Starts ``phone.mjs`` for an account: ``await js_phone(hub_node, alice, [bob], steps)``."""
    node = node_binary()
    started: list[JsPhone] = []

    async def start(
        hub: HubNode,
        account: Account,
        peers: list[Account],
        steps: list[dict[str, Any]],
        **job: Any,
    ) -> JsPhone:
        device = job.pop("device", f"js-{account.name}")
        full_job = {
            "url": hub.url,
            "token": await account.token_for(device, hub.url),
            "device": device,
            "secretKey": base64.b64encode(bytes(account.keys)).decode(),
            "peers": {peer.id: peer.public_key_b64 for peer in peers},
            "transports": ["websocket"],
            "steps": steps,
            **job,
        }
        phone = await JsPhone.start(node, full_job, tmp_path / f"phone-{len(started)}.stderr")
        started.append(phone)
        return phone

    try:
        yield start
    finally:
        for phone in started:
            await phone.kill()


@pytest.fixture
def api(hub_node: HubNode) -> Api:
    return Api(hub_node.url)


TEXTS = [
    "Gig at Café Olé 🎸",
    'Setlist:\n1. Ça plane pour moi\n2. 夜に駆ける\n3. "Quotes" & <tags> \\ back\u2028slash',
    "riff " * 2000,
]


async def test_js_client_encrypts_and_python_client_decrypts(js_phone, hub_node, api):
    alice, bob = await api.register("alice"), await api.register("bob")
    bob_phone = await Phone(bob).connect(hub_node.url)
    ids = [str(uuid.uuid4()) for _ in TEXTS]
    try:
        phone = await js_phone(
            hub_node,
            alice,
            [bob],
            [
                {"do": "send", "to": bob.id, "text": t, "id": i}
                for t, i in zip(TEXTS, ids, strict=True)
            ],
        )
        lines = await phone.finish()
        [start] = phone.of("start")
        assert start["socketIoClient"].startswith("4.") and start["tweetnacl"] == "1.0.3", start
        acks = [line["ack"] for line in lines if line["event"] == "ack"]
        assert len(acks) == len(TEXTS), phone.transcript()
        for message_id, text, ack in zip(ids, TEXTS, acks, strict=True):
            assert ack == {"ok": True, "id": message_id, "ts": ack["ts"]}
            assert isinstance(ack["ts"], int)
            received = await bob_phone.next("message:new")
            assert received["id"] == message_id and received["ts"] == ack["ts"]
            assert received["from"] == alice.id and received["to"] == bob.id
            assert received["peer"] == alice.id
            assert len(base64.b64decode(received["nonce"])) == 24
            assert open_box(bob, alice.public_key_b64, received) == text
        assert [
            m["seq"] for m in (await bob_phone.call("message:sync", {"after": 0}))["messages"]
        ] == [
            1,
            2,
            3,
        ]
    finally:
        await bob_phone.close()


async def test_python_client_encrypts_and_js_client_decrypts(js_phone, hub_node, api):
    alice, bob = await api.register("alice"), await api.register("bob")
    phone = await js_phone(hub_node, bob, [alice], [{"do": "receive", "count": len(TEXTS)}])
    connected = await phone.next("connected")
    assert connected["transport"] == "websocket"
    alice_phone = await Phone(alice).connect(hub_node.url)
    sent = []
    try:
        for text in TEXTS:
            payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, text)}
            ack = await alice_phone.call("message:send", payload)
            assert ack["ok"] is True, ack
            sent.append((payload, ack))
        await phone.finish()
    finally:
        await alice_phone.close()
    received = phone.of("message:new")
    assert [line["plaintext"] for line in received] == TEXTS
    for (payload, ack), line in zip(sent, received, strict=True):
        message = line["message"]
        assert message["id"] == payload["id"] and message["ts"] == ack["ts"]
        assert message["ciphertext"] == payload["ciphertext"]
        assert message["nonce"] == payload["nonce"]
        assert message["from"] == alice.id and message["to"] == bob.id
        assert message["peer"] == alice.id
    assert [line["message"]["seq"] for line in received] == [1, 2, 3]


async def test_js_client_is_refused_with_unauthorized_and_a_code(js_phone, hub_node, api, test_env):
    alice = await api.register("alice")
    now = int(time.time())
    forged = jwt.encode(
        {"sub": alice.id, "typ": "access", "iat": now, "exp": now + 3600},
        "not-the-hub-secret-" + uuid.uuid4().hex,
        algorithm="HS256",
    )
    expired = jwt.encode(
        {"sub": alice.id, "typ": "access", "iat": now - 7200, "exp": now - 3600},
        test_env.jwt_secret,
        algorithm="HS256",
    )
    cases = {
        "token_invalid": forged,
        "token_expired": expired,
        "wrong_token_type": alice.refresh_token,
        "invalid_handshake": None,  # no token at all
    }
    phones = {
        code: await js_phone(hub_node, alice, [], [], token=token, expectConnectError=True)
        for code, token in cases.items()
    }
    for code, phone in phones.items():
        await phone.finish()
        assert not phone.of("connected"), phone.transcript()
        [refused] = phone.of("connect_error")
        assert refused["message"] == "unauthorized", phone.transcript()
        assert refused["data"]["code"] == code, phone.transcript()
        assert isinstance(refused["data"]["message"], str) and refused["data"]["message"]


async def test_js_client_starting_with_long_polling_still_works(js_phone, hub_node, api):
    alice, bob = await api.register("alice"), await api.register("bob")
    bob_phone = await Phone(bob).connect(hub_node.url)
    message_id = str(uuid.uuid4())
    try:
        phone = await js_phone(
            hub_node,
            alice,
            [bob],
            [
                {"do": "send", "to": bob.id, "text": TEXTS[0], "id": message_id},
                {"do": "awaitTransport", "name": "websocket"},
                {"do": "receive", "count": 1},
            ],
            transports=["polling", "websocket"],
        )
        connected = await phone.next("connected")
        assert connected["openedOn"] == "polling", phone.transcript()
        ack = (await phone.next("ack"))["ack"]
        assert ack == {"ok": True, "id": message_id, "ts": ack["ts"]}
        received = await bob_phone.next("message:new")
        assert received["id"] == message_id
        assert open_box(bob, alice.public_key_b64, received) == TEXTS[0]
        assert (await phone.next("transport"))["name"] == "websocket"
        reply = {"id": str(uuid.uuid4()), "to": alice.id, **seal(bob, alice, "Olé! 🥁 count me in")}
        assert (await bob_phone.call("message:send", reply))["ok"] is True
        await phone.finish()
    finally:
        await bob_phone.close()
    assert [t["name"] for t in phone.of("transport") if t.get("upgraded")] == ["websocket"]
    [line] = phone.of("message:new")
    assert line["message"]["id"] == reply["id"] and line["message"]["peer"] == bob.id
    assert line["plaintext"] == "Olé! 🥁 count me in"


async def test_js_client_that_can_only_long_poll_still_works(js_phone, hub_node, api):
    """No upgrade at all (a proxy that blocks WebSocket): events flow over HTTP polling."""
    alice, bob = await api.register("alice"), await api.register("bob")
    bob_phone = await Phone(bob).connect(hub_node.url)
    message_id = str(uuid.uuid4())
    try:
        phone = await js_phone(
            hub_node,
            alice,
            [bob],
            [
                {"do": "send", "to": bob.id, "text": TEXTS[1], "id": message_id},
                {"do": "receive", "count": 1},
                {"do": "sync", "after": 0},
            ],
            transports=["polling"],
        )
        connected = await phone.next("connected")
        assert connected["openedOn"] == "polling" and connected["transport"] == "polling"
        received = await bob_phone.next("message:new")
        assert received["id"] == message_id
        assert open_box(bob, alice.public_key_b64, received) == TEXTS[1]
        reply = {"id": str(uuid.uuid4()), "to": alice.id, **seal(bob, alice, TEXTS[2])}
        assert (await bob_phone.call("message:send", reply))["ok"] is True
        await phone.finish()
    finally:
        await bob_phone.close()
    [line] = phone.of("message:new")
    assert line["message"]["id"] == reply["id"] and line["plaintext"] == TEXTS[2]
    [sync] = phone.of("sync")
    assert [m["id"] for m in sync["ack"]["messages"]] == [message_id, reply["id"]]
    assert sync["plaintexts"] == [TEXTS[1], TEXTS[2]]
    assert not [t for t in phone.of("transport") if t.get("upgraded")]


async def test_js_client_sync_catches_up_after_being_offline(js_phone, hub_node, api):
    alice, bob = await api.register("alice"), await api.register("bob")
    await make_contacts(api, alice, bob)  # more than a request's 3 messages
    texts = [f"take {i}: Café Olé 🎸" for i in range(5)]
    alice_phone = await Phone(alice).connect(hub_node.url)
    sent = []
    try:
        for text in texts:
            payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, text)}
            assert (await alice_phone.call("message:send", payload))["ok"] is True
            sent.append(payload["id"])
    finally:
        await alice_phone.close()
    phone = await js_phone(hub_node, bob, [alice], [{"do": "sync", "after": 0}])
    await phone.finish()
    [sync] = phone.of("sync")
    assert sync["request"] == {"after": 0}
    assert sync["ack"]["ok"] is True and sync["ack"]["more"] is False
    messages = sync["ack"]["messages"]
    assert [m["id"] for m in messages] == sent
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert all(m["from"] == alice.id and m["peer"] == alice.id for m in messages)
    assert sync["plaintexts"] == texts
    assert not phone.of("message:new")  # nothing was pushed twice on connect


@pytest_asyncio.fixture
async def burst_nodes(test_env, tmp_path: Path) -> AsyncIterator[tuple[HubNode, HubNode]]:
    """Two nodes whose per-connection event budget lets one phone flush a 200-message outbox."""
    env = test_env.hub_env(SOCKET_EVENTS_PER_SECOND="10000", SOCKET_EVENT_BURST="1000")
    async with two_nodes(env, tmp_path) as (node_a, node_b):
        yield node_a, node_b


async def test_a_burst_of_200_keeps_its_order_on_another_node(js_phone, burst_nodes):
    node_a, node_b = burst_nodes
    api = Api(node_a.url)
    alice, bob = await api.register("alice"), await api.register("bob")
    await make_contacts(api, alice, bob)  # more than a request's 3 messages
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        phone = await js_phone(
            node_a, alice, [bob], [{"do": "burst", "to": bob.id, "count": 200, "prefix": "take"}]
        )
        await phone.finish()
        [burst] = phone.of("burst")
        sent = burst["ids"]
        live = [await bob_phone.next("message:new") for _ in sent]
        assert [m["id"] for m in live] == sent
        assert [m["seq"] for m in live] == list(range(1, 201))
        assert [open_box(bob, alice.public_key_b64, m) for m in live] == [
            f"take {i}" for i in range(200)
        ]
        synced: list[dict[str, Any]] = []
        while True:
            page = await bob_phone.call("message:sync", {"after": len(synced)})
            synced += page["messages"]
            if not page["more"]:
                break
        assert [m["id"] for m in synced] == sent
        history: list[dict[str, Any]] = []
        cursor = ""
        while True:
            status, page = await api.request(
                "GET", f"/api/messages/{alice.id}?limit=100{cursor}", token=bob.access_token
            )
            assert status == 200, page
            history += page["items"]
            if page["nextCursor"] is None:
                break
            cursor = f"&cursor={page['nextCursor']}"
        assert [m["id"] for m in reversed(history)] == sent
    finally:
        await bob_phone.close()


async def test_js_edit_and_delete_reach_every_device_of_both_users(js_phone, two_hub_nodes):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice, bob = await api.register("alice"), await api.register("bob")
    alice_laptop = await Phone(alice, "laptop").connect(node_b.url)
    bob_tablet = await Phone(bob, "tablet").connect(node_a.url)
    original_id, edit_id = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        bob_js = await js_phone(
            node_b,
            bob,
            [alice],
            [
                {"do": "receive", "count": 2},
                {"do": "receiveDeleted", "count": 1},
                {"do": "sync", "after": 0},
            ],
        )
        await bob_js.next("connected")
        alice_js = await js_phone(
            node_a,
            alice,
            [bob],
            [
                {"do": "send", "to": bob.id, "text": "soundcheck at 5", "id": original_id},
                {
                    "do": "edit",
                    "to": bob.id,
                    "replaces": original_id,
                    "text": "at 6",
                    "id": edit_id,
                },
                {"do": "delete", "id": original_id},
            ],
        )
        await alice_js.finish()
        assert [line["ack"]["ok"] for line in alice_js.of("ack")] == [True, True, True]
        await bob_js.finish()
        for phone in (alice_laptop, bob_tablet):
            first, edit = await phone.next("message:new"), await phone.next("message:new")
            assert (first["id"], edit["id"]) == (original_id, edit_id)
            assert edit["relatesTo"] == {"type": "edit", "id": original_id}
            deleted = await phone.next("message:deleted")
            assert deleted["id"] == original_id and deleted["by"] == alice.id
            assert deleted["seq"] == 3
        live = bob_js.of("message:new")
        assert [line["plaintext"] for line in live] == ["soundcheck at 5", "at 6"]
        assert live[1]["message"]["relatesTo"] == {"type": "edit", "id": original_id}
        [deleted_line] = bob_js.of("message:deleted")
        assert deleted_line["deleted"]["id"] == original_id
        [sync] = bob_js.of("sync")
        items = sync["ack"]["messages"]
        assert [m.get("deleted") for m in items[:2]] == [True, True]
        assert items[2] == {**deleted_line["deleted"]}
        assert sync["plaintexts"] == [None, None, None]
    finally:
        await alice_laptop.close()
        await bob_tablet.close()


async def test_js_client_receives_session_revoked_then_is_disconnected(js_phone, two_hub_nodes):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    phone = await js_phone(
        node_b, alice, [], [{"do": "awaitEnd", "event": "session:revoked", "timeoutMs": 5000}]
    )
    await phone.next("connected")
    status, _ = await api.request("POST", "/api/auth/logout", token=alice.access_token)
    assert status == 204
    [ended] = [line for line in await phone.finish() if line["event"] == "ended"]
    assert ended["payload"] == {"reason": "logout"}, phone.transcript()
    assert ended["reason"] == "io server disconnect", phone.transcript()


async def test_js_client_receives_session_replaced_when_its_device_connects_again(
    js_phone, two_hub_nodes
):
    node_a, node_b = two_hub_nodes
    alice = await Api(node_a.url).register("alice")
    phone = await js_phone(
        node_a, alice, [], [{"do": "awaitEnd", "event": "session:replaced", "timeoutMs": 5000}]
    )
    await phone.next("connected")
    newer = await Phone(alice, "js-alice").connect(node_b.url)
    try:
        [ended] = [line for line in await phone.finish() if line["event"] == "ended"]
        assert ended["payload"] == {"reason": "new_connection"}, phone.transcript()
        assert ended["reason"] == "io server disconnect", phone.transcript()
        assert newer.client.connected
    finally:
        await newer.close()


@pytest_asyncio.fixture
async def attachment_nodes(test_env, tmp_path: Path) -> AsyncIterator[tuple[HubNode, HubNode]]:
    """Two nodes sharing the embedded attachment store's folder, sweeping every second."""
    env = test_env.hub_env(
        ATTACHMENT_DIR=str(tmp_path / "attachments"), ATTACHMENT_SWEEP_SECONDS="1"
    )
    async with two_nodes(env, tmp_path) as (node_a, node_b):
        yield node_a, node_b


async def test_js_encrypted_attachment_is_decrypted_by_the_recipient_on_the_other_node(
    js_phone, attachment_nodes, tmp_path
):
    node_a, node_b = attachment_nodes
    api_b = Api(node_b.url)
    alice, bob, eve = await Api(node_a.url).register_many("alice", "bob", "eve")
    bob_phone = await Phone(bob).connect(node_b.url)
    message_id = str(uuid.uuid4())
    try:
        alice_js = await js_phone(
            node_a,
            alice,
            [bob],
            [
                {
                    "do": "sendAttachment",
                    "to": bob.id,
                    "size": 150_000,
                    "mime": "audio/mp4",
                    "id": message_id,
                },
            ],
        )
        await alice_js.finish()
        [sent] = alice_js.of("attachment")
        assert sent["ack"]["ok"] is True and sent["id"] == message_id, alice_js.transcript()
        received = await bob_phone.next("message:new")
        assert received["id"] == message_id
        described = json.loads(open_box(bob, alice.public_key_b64, received))
        assert described["attachmentId"] == sent["attachmentId"]
        assert described["mime"] == "audio/mp4"
        status, link = await api_b.request(
            "GET", f"/api/attachments/{described['attachmentId']}", token=bob.access_token
        )
        assert status == 200 and link["size"] == described["size"], link
        async with aiohttp.ClientSession() as http, http.get(link["downloadUrl"]) as response:
            assert response.status == 200
            encrypted = await response.read()
        assert hashlib.sha256(encrypted).hexdigest() == described["sha256"]
        plain = nacl.secret.SecretBox(base64.b64decode(described["key"])).decrypt(encrypted)
        assert plain == base64.b64decode(sent["plaintext"])
        status, refused = await api_b.request(
            "GET", f"/api/attachments/{described['attachmentId']}", token=eve.access_token
        )
        assert status == 404 and refused["error"]["code"] == "not_found", refused
        alice_phone = await Phone(alice, "laptop").connect(node_b.url)
        try:
            deleted = await alice_phone.call("message:delete", {"id": message_id})
            assert deleted["ok"] is True, deleted
        finally:
            await alice_phone.close()
        status, gone = await api_b.request(
            "GET", f"/api/attachments/{described['attachmentId']}", token=bob.access_token
        )
        assert status == 404, gone
        stored = tmp_path / "attachments" / described["attachmentId"]
        deadline = time.monotonic() + 10
        while stored.exists():
            assert time.monotonic() < deadline, "the sweep did not remove the deleted file"
            await asyncio.sleep(0.1)
    finally:
        await bob_phone.close()
