"""Faults: PostgreSQL or Redis going away under a running hub. Nothing acknowledged is lost,
nothing is falsely acknowledged, and the hub recovers by itself."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis

from tests.support import Api, Phone, open_box, seal, start_hub_node
from tests.support.bands import make_contacts
from tests.support.faults import postgres_proxy_for, redis_proxy_for


async def send_until_ok(phone: Phone, payload: dict, within: float) -> dict:
    """Resend the same message (same id) until it is acknowledged, as the app does."""
    deadline = time.monotonic() + within
    while True:
        ack = await phone.call("message:send", payload)
        if ack["ok"] or time.monotonic() > deadline:
            return ack
        assert ack["error"]["code"] == "unavailable" and ack["error"]["retryable"] is True, ack
        await asyncio.sleep(0.5)


async def test_sends_fail_retryably_while_postgres_is_down_and_resume_after(test_env, tmp_path):
    proxy, proxied_url = postgres_proxy_for(test_env.database_url)
    await proxy.start()
    node = await start_hub_node(test_env.hub_env(DATABASE_URL=proxied_url), tmp_path / "a", "a")
    try:
        api = Api(node.url)
        alice, bob = await api.register_many("alice", "bob")
        await make_contacts(api, alice, bob)  # more than a request's 3 messages
        phone = await Phone(alice).connect(node.url)
        first = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "before")}
        assert (await phone.call("message:send", first))["ok"]

        await proxy.cut()
        second = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "during")}
        ack = await phone.call("message:send", second, timeout=30)
        assert ack["ok"] is False, "no ack may claim a message PostgreSQL never stored"
        assert ack["error"]["code"] == "unavailable" and ack["error"]["retryable"] is True
        status, health = await api.request("GET", "/healthz")
        assert status == 503 and health["checks"]["postgres"] is False

        await proxy.restore()
        assert (await send_until_ok(phone, second, within=30))["ok"]
        await phone.close()
        bob_phone = await Phone(bob).connect(node.url)
        sync = await bob_phone.call("message:sync", {"after": 0})
        assert [m["id"] for m in sync["messages"]] == [first["id"], second["id"]]
        assert open_box(bob, alice.public_key_b64, sync["messages"][1]) == "during"
        await bob_phone.close()
    finally:
        await node.stop()
        await proxy.stop()


async def test_fanout_and_presence_recover_when_redis_restarts_empty(test_env, tmp_path):
    proxy, proxied_url = redis_proxy_for(test_env.servers.redis_url)
    await proxy.start()
    env = test_env.hub_env(REDIS_URL=proxied_url, DEVICE_TTL_SECONDS="3")
    node_a, node_b = await asyncio.gather(
        start_hub_node(env, tmp_path / "a", "a"), start_hub_node(env, tmp_path / "b", "b")
    )
    direct = aioredis.Redis.from_url(test_env.servers.redis_url)
    try:
        api = Api(node_a.url)
        alice, bob = await api.register_many("alice", "bob")
        await make_contacts(api, alice, bob)  # more than a request's 3 messages
        alice_phone = await Phone(alice).connect(node_a.url)
        bob_phone = await Phone(bob).connect(node_b.url)
        sent = []
        for text in ("one", "two"):
            payload = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, text)}
            assert (await alice_phone.call("message:send", payload))["ok"]
            sent.append(payload["id"])
        assert (await bob_phone.next("message:new"))["id"] == sent[0]
        assert (await bob_phone.next("message:new"))["id"] == sent[1]

        await proxy.cut()
        async for key in direct.scan_iter(match=f"{test_env.redis_prefix}:*"):
            await direct.delete(key)  # a restarted Redis keeps nothing
        during = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "during")}
        assert (await alice_phone.call("message:send", during, timeout=30))[
            "ok"
        ]  # PostgreSQL has it
        sent.append(during["id"])
        await proxy.restore()

        deadline = time.monotonic() + 30
        live = None
        while live is None:
            assert time.monotonic() < deadline, "cross-node delivery did not resume in 30 s"
            probe = {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "probe")}
            assert (await send_until_ok(alice_phone, probe, within=10))["ok"]
            sent.append(probe["id"])
            try:
                while True:
                    got = await bob_phone.next("message:new", timeout=1)
                    if got["id"] == probe["id"]:
                        live = got
                        break
            except TimeoutError:
                continue
        sync = await bob_phone.call("message:sync", {"after": 0})
        assert [m["id"] for m in sync["messages"]] == sent  # everything, once, in order
        presence = await alice_phone.call("presence:subscribe", {"users": [bob.id]})
        assert presence["presence"][0]["status"] == "online"  # rebuilt from live connections
        await alice_phone.close()
        await bob_phone.close()
    finally:
        await direct.aclose()
        await asyncio.gather(node_a.stop(), node_b.stop())
        await proxy.stop()
