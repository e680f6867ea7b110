"""Encrypted attachments over two hub nodes sharing the embedded store's folder: reserve,
upload to the signed URL, bind with a send, download by the recipient on the other node,
refusals that store nothing, the quota, deletion with the message and the sweep."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nacl.secret
import nacl.utils
import pytest_asyncio

from storage.blobs.files import AlreadyUploaded, BlobFiles, WrongLength
from tests.support import Account, Api, HubNode, Phone, seal, start_hub_node, two_nodes
from tests.support.bands import create_band

MAX_BYTES = 1_000_000
QUOTA_BYTES = 3_000_000


@pytest_asyncio.fixture
async def attachment_nodes(
    test_env, tmp_path: Path
) -> AsyncIterator[tuple[HubNode, HubNode, Path]]:
    """Two nodes, one shared attachment folder, a sweep every second."""
    folder = tmp_path / "attachments"
    env = test_env.hub_env(
        ATTACHMENT_DIR=str(folder),
        ATTACHMENT_SWEEP_SECONDS="1",
        MAX_ATTACHMENT_BYTES=str(MAX_BYTES),
        ATTACHMENT_BYTES_PER_DAY=str(QUOTA_BYTES),
    )
    async with two_nodes(env, tmp_path) as (node_a, node_b):
        yield node_a, node_b, folder


async def reserve(api: Api, account: Account, conversation: str, size: int) -> tuple[int, Any]:
    return await api.request(
        "POST",
        "/api/attachments",
        token=account.access_token,
        json={"size": size, "conversationId": conversation},
    )


async def put_bytes(slot: dict[str, Any], data: Any, url: str | None = None) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            slot["method"], url or slot["uploadUrl"], data=data, headers=slot["headers"]
        ) as response,
    ):
        return response.status


async def fetch(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.read()


async def upload(api: Api, account: Account, conversation: str, data: bytes) -> str:
    status, slot = await reserve(api, account, conversation, len(data))
    assert status == 201, slot
    assert slot["method"] == "PUT" and slot["expiresAt"] > time.time() * 1000
    assert await put_bytes(slot, data) == 204
    return str(slot["id"])


def direct(sender: Account, to: Account, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "to": to.id, **seal(sender, to, text), **extra}


async def link(api: Api, reader: Account, attachment_id: str) -> tuple[int, Any]:
    return await api.request("GET", f"/api/attachments/{attachment_id}", token=reader.access_token)


async def wait_until_gone(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while path.exists():
        assert time.monotonic() < deadline, f"{path} was not swept in {seconds} s"
        await asyncio.sleep(0.1)


async def test_an_attachment_reaches_the_recipient_on_the_other_node_and_goes_with_its_message(
    attachment_nodes,
):
    node_a, node_b, folder = attachment_nodes
    api_a, api_b = Api(node_a.url), Api(node_b.url)
    alice, bob, eve = await api_a.register_many("alice", "bob", "eve")
    key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
    plain = os.urandom(200_000)
    encrypted = bytes(nacl.secret.SecretBox(key).encrypt(plain))
    attachment_id = await upload(api_a, alice, bob.id, encrypted)
    assert (folder / attachment_id).stat().st_size == len(encrypted)
    # Before it is bound: its uploader may see it, nobody else.
    status, own = await link(api_b, alice, attachment_id)
    assert status == 200 and own["size"] == len(encrypted), own
    for stranger in (bob, eve):
        status, refused = await link(api_b, stranger, attachment_id)
        assert status == 404 and refused["error"]["code"] == "not_found", refused
    alice_phone = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        message = direct(alice, bob, "setlist attached", attachments=[attachment_id])
        ack = await alice_phone.call("message:send", message)
        assert ack["ok"] is True, ack
        assert (await bob_phone.next("message:new"))["id"] == message["id"]
        status, answer = await link(api_b, bob, attachment_id)
        assert status == 200, answer
        assert answer["id"] == attachment_id and answer["size"] == len(encrypted)
        assert answer["downloadUrl"].startswith(node_b.url)
        status, body = await fetch(answer["downloadUrl"])
        assert status == 200 and nacl.secret.SecretBox(key).decrypt(body) == plain
        status, refused = await link(api_b, eve, attachment_id)
        assert status == 404, refused
        # The same attachment cannot be sent again with another message.
        again = direct(alice, bob, "again", attachments=[attachment_id])
        refused_ack = await alice_phone.call("message:send", again)
        assert refused_ack["ok"] is False
        assert refused_ack["error"]["code"] == "attachment_unusable", refused_ack
        assert refused_ack["error"]["details"]["reason"] == "already_bound"
        # A resend of the bound message is still the same message, acked again.
        resent = await alice_phone.call("message:send", message)
        assert resent == ack, resent
        deleted = await alice_phone.call("message:delete", {"id": message["id"]})
        assert deleted["ok"] is True, deleted
        for reader in (alice, bob):
            status, gone = await link(api_a, reader, attachment_id)
            assert status == 404, gone
        await wait_until_gone(folder / attachment_id)
        assert (await fetch(answer["downloadUrl"]))[0] == 404
    finally:
        await alice_phone.close()
        await bob_phone.close()


async def test_refused_attachments_store_no_message(attachment_nodes, test_env):
    node_a, node_b, _ = attachment_nodes
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    not_uploaded_status, not_uploaded = await reserve(api, alice, bob.id, 64)
    assert not_uploaded_status == 201
    carols = await upload(api, carol, bob.id, b"c" * 64)
    for_carol = await upload(api, alice, carol.id, b"x" * 64)
    eleven = [await upload(api, alice, bob.id, bytes([i]) * 32) for i in range(11)]
    phone = await Phone(alice).connect(node_b.url)
    refusals = {
        "another user's upload": ([carols], "not_found", None),
        "another conversation": ([for_carol], "attachment_unusable", "another_conversation"),
        "not uploaded": ([not_uploaded["id"]], "attachment_unusable", "not_uploaded"),
        "a missing one": ([str(uuid.uuid4())], "not_found", None),
        "more than ten": (eleven, "too_large", None),
        "the same one twice": ([eleven[0], eleven[0]], "invalid_payload", None),
        "not a uuid": (["../../etc/passwd"], "invalid_payload", None),
    }
    sent_ids = []
    try:
        for case, (ids, code, reason) in refusals.items():
            message = direct(alice, bob, case, attachments=ids)
            sent_ids.append(message["id"])
            ack = await phone.call("message:send", message)
            assert ack["ok"] is False and ack["error"]["code"] == code, (case, ack)
            if reason is not None:
                assert ack["error"]["details"]["reason"] == reason, (case, ack)
        # An edit is held to the same rules.
        original = direct(alice, bob, "riff")
        assert (await phone.call("message:send", original))["ok"]
        edit = {
            "id": str(uuid.uuid4()),
            "replaces": original["id"],
            **seal(alice, bob, "riff v2"),
            "attachments": [carols],
        }
        sent_ids.append(edit["id"])
        refused = await phone.call("message:edit", edit)
        assert refused["ok"] is False and refused["error"]["code"] == "not_found", refused
        edit["attachments"] = eleven[:10]
        edit["id"] = str(uuid.uuid4())
        assert (await phone.call("message:edit", edit))["ok"] is True
    finally:
        await phone.close()
    conn = await asyncpg.connect(test_env.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])", sent_ids
        )
        bound = await conn.fetchval(
            "SELECT count(*) FROM attachments WHERE message_id = $1", edit["id"]
        )
    finally:
        await conn.close()
    assert stored == 0 and bound == 10
    status, answer = await link(Api(node_b.url), bob, eleven[3])
    assert status == 200, answer


async def test_a_band_attachment_is_for_the_band_and_its_members_only(attachment_nodes):
    node_a, node_b, _ = attachment_nodes
    api = Api(node_a.url)
    alice, bob, eve = await api.register_many("alice", "bob", "eve")
    band = await create_band(api, alice, bob)
    status, refused = await reserve(api, eve, band["id"], 10)
    status_missing, missing = await reserve(api, eve, str(uuid.uuid4()), 10)
    assert (status, status_missing) == (404, 404), (refused, missing)
    assert refused["error"] == missing["error"]
    attachment_id = await upload(api, alice, band["id"], b"b" * 100)
    phone = await Phone(alice).connect(node_a.url)
    try:
        message = {
            "id": str(uuid.uuid4()),
            "band": band["id"],
            "envelopes": [{"to": bob.id, **seal(alice, bob, "chart.pdf")}],
            "attachments": [attachment_id],
        }
        assert (await phone.call("message:send", message))["ok"] is True
    finally:
        await phone.close()
    status, answer = await link(Api(node_b.url), bob, attachment_id)
    assert status == 200, answer
    assert (await fetch(answer["downloadUrl"])) == (200, b"b" * 100)
    assert (await link(api, eve, attachment_id))[0] == 404


async def test_an_upload_of_another_length_or_to_an_altered_url_is_refused(attachment_nodes):
    node_a, _, folder = attachment_nodes
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    status, slot = await reserve(api, alice, bob.id, 100)
    assert status == 201, slot
    assert await put_bytes(slot, b"s" * 99) == 400
    assert await put_bytes(slot, b"l" * 101) == 400

    async def unsized() -> AsyncIterator[bytes]:
        yield b"u" * 100

    assert await put_bytes(slot, unsized()) == 400  # chunked: no Content-Length
    url = slot["uploadUrl"]
    for altered in (
        url.replace("size=100", "size=101"),
        url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
        url.replace(slot["id"], str(uuid.uuid4())),
        url.split("&sig=")[0],
    ):
        assert await put_bytes(slot, b"a" * 100, altered) in (400, 403), altered
    assert not (folder / slot["id"]).exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]
    assert await put_bytes(slot, b"k" * 100) == 204
    assert await put_bytes(slot, b"k" * 100) == 409  # an upload is written once
    status, answer = await link(api, alice, slot["id"])
    assert status == 200, answer
    tampered = answer["downloadUrl"].replace("expires=", "expires=9")
    assert (await fetch(tampered))[0] == 403


async def test_the_limits_size_and_daily_quota(attachment_nodes):
    node_a, _, _ = attachment_nodes
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    status, too_large = await reserve(api, alice, bob.id, MAX_BYTES + 1)
    assert status == 413 and too_large["error"]["code"] == "too_large", too_large
    for size in (0, -1):
        assert (await reserve(api, alice, bob.id, size))[0] == 400
    assert (await reserve(api, alice, alice.id, 10))[0] == 400
    for _ in range(QUOTA_BYTES // MAX_BYTES):
        assert (await reserve(api, alice, bob.id, MAX_BYTES))[0] == 201
    status, limited = await reserve(api, alice, bob.id, 1)
    assert status == 429 and limited["error"]["code"] == "rate_limited", limited
    assert limited["error"]["details"]["retryAfter"] > 3600
    assert (await reserve(api, bob, alice.id, MAX_BYTES))[0] == 201  # a quota per user


async def test_an_unbound_upload_is_swept_and_expired_urls_are_refused(test_env, tmp_path):
    folder = tmp_path / "attachments"
    env = test_env.hub_env(
        ATTACHMENT_DIR=str(folder),
        ATTACHMENT_UNBOUND_SECONDS="1",
        ATTACHMENT_SWEEP_SECONDS="1",
        ATTACHMENT_URL_SECONDS="1",
        ATTACHMENT_UPLOAD_URL_SECONDS="1",
        HUB_LOG_LEVEL="INFO",
    )
    node = await start_hub_node(env, tmp_path / "node", "node")
    try:
        api = Api(node.url)
        alice, bob = await api.register_many("alice", "bob")
        status, late = await reserve(api, alice, bob.id, 10)
        assert status == 201
        attachment_id = await upload(api, alice, bob.id, b"never sent")
        status, answer = await link(api, alice, attachment_id)
        assert status == 200
        await asyncio.sleep(1.2)
        assert await put_bytes(late, b"0123456789") == 403  # the upload URL expired
        assert (await fetch(answer["downloadUrl"]))[0] == 403  # so did the download URL
        await wait_until_gone(folder / attachment_id)
        assert (await link(api, alice, attachment_id))[0] == 404
        phone = await Phone(alice).connect(node.url)
        try:
            ack = await phone.call(
                "message:send", direct(alice, bob, "too late", attachments=[attachment_id])
            )
        finally:
            await phone.close()
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack
        assert "attachment sweep removed" in node.log()
    finally:
        await node.stop()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_the_embedded_files_keep_only_exact_uploads(tmp_path):
    """Beyond Content-Length: the bytes actually received must be the declared size."""
    files = BlobFiles(tmp_path / "blobs")
    files.open_folder()
    for parts in ((b"abc",), (b"abc", b"de", b"f"), ()):
        try:
            await files.write_exactly("k", 5, _chunks(*parts))
        except WrongLength:
            pass
        else:
            raise AssertionError(f"{parts} was kept as 5 bytes")
    assert list((tmp_path / "blobs").iterdir()) == []
    await files.write_exactly("k", 5, _chunks(b"ab", b"cde"))
    assert await files.size_of("k") == 5
    try:
        await files.write_exactly("k", 5, _chunks(b"vwxyz"))
    except AlreadyUploaded:
        pass
    else:
        raise AssertionError("an upload was replaced")
    assert (tmp_path / "blobs" / "k").read_bytes() == b"abcde"
    await files.delete(["k", "k"])
    assert await files.size_of("k") is None
