"""The S3 path of the attachment store, against moto's S3 server on loopback: the hub hands
out the bucket's presigned URLs (the bytes never pass through the hub), binds only a
complete upload, and the sweep deletes the object once its message is deleted."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import boto3
import pytest
import pytest_asyncio
from moto.server import ThreadedMotoServer

from tests.support import Api, HubNode, Phone, seal, two_nodes
from tests.support.hub_nodes import free_port

BUCKET = "artist-space-attachments"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def bucket_keys(endpoint: str) -> set[str]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


@pytest_asyncio.fixture
async def s3_nodes(
    test_env, tmp_path: Path, s3_endpoint: str
) -> AsyncIterator[tuple[HubNode, HubNode]]:
    env = test_env.hub_env(
        S3_BUCKET=BUCKET,
        S3_ENDPOINT_URL=s3_endpoint,
        S3_REGION="us-east-1",
        ATTACHMENT_SWEEP_SECONDS="1",
        **CREDENTIALS,
    )
    async with two_nodes(env, tmp_path) as (node_a, node_b):
        yield node_a, node_b


async def test_the_s3_store_uploads_binds_serves_and_sweeps(s3_nodes, s3_endpoint, tmp_path):
    node_a, node_b = s3_nodes
    api = Api(node_a.url)
    alice, bob, eve = await api.register_many("alice", "bob", "eve")
    encrypted = bytes(range(256)) * 40
    status, slot = await api.request(
        "POST",
        "/api/attachments",
        token=alice.access_token,
        json={"size": len(encrypted), "conversationId": bob.id},
    )
    assert status == 201, slot
    assert slot["uploadUrl"].startswith(s3_endpoint), slot  # the bucket's URL, not the hub's
    assert "X-Amz-Signature=" in slot["uploadUrl"]
    phone = await Phone(alice).connect(node_a.url)
    try:
        early = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "early")}
        refused = await phone.call("message:send", {**early, "attachments": [slot["id"]]})
        assert refused["ok"] is False, refused
        assert refused["error"]["details"]["reason"] == "not_uploaded", refused
        # Real S3 refuses another length itself (Content-Length is a signed header of the
        # presigned PUT); moto does not check signatures, so this shows the hub's own guard:
        # an object of another length is never bound.
        assert "content-length" in slot["uploadUrl"].lower()
        for body in (encrypted[:-1], encrypted):
            async with (
                aiohttp.ClientSession() as http,
                http.put(slot["uploadUrl"], data=body, headers=slot["headers"]) as response,
            ):
                assert response.status == 200, await response.text()
            if body != encrypted:
                short = await phone.call("message:send", {**early, "attachments": [slot["id"]]})
                assert short["error"]["details"]["reason"] == "not_uploaded", short
        assert bucket_keys(s3_endpoint) == {slot["id"]}
        message = {
            "id": str(uuid.uuid4()),
            "to": bob.id,
            **seal(alice, bob, "take 3"),
            "attachments": [slot["id"]],
        }
        assert (await phone.call("message:send", message))["ok"] is True
        status, link = await Api(node_b.url).request(
            "GET", f"/api/attachments/{slot['id']}", token=bob.access_token
        )
        assert status == 200 and link["size"] == len(encrypted), link
        assert link["downloadUrl"].startswith(s3_endpoint)
        async with aiohttp.ClientSession() as http, http.get(link["downloadUrl"]) as response:
            assert response.status == 200 and await response.read() == encrypted
        status, _ = await api.request(
            "GET", f"/api/attachments/{slot['id']}", token=eve.access_token
        )
        assert status == 404
        assert (await phone.call("message:delete", {"id": message["id"]}))["ok"] is True
    finally:
        await phone.close()
    deadline = time.monotonic() + 10
    while bucket_keys(s3_endpoint):
        assert time.monotonic() < deadline, "the sweep did not delete the object"
        await asyncio.sleep(0.2)
    status, _ = await api.request("GET", f"/api/attachments/{slot['id']}", token=bob.access_token)
    assert status == 404
