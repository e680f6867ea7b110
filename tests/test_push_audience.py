"""Who push queues jobs for: only users who may hold a token (``hub/push/audience.py``),
known to every node, including one whose subscription broke while a token was registered."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Api, HubNode, Phone
from tests.support.bands import make_contacts
from tests.support.calls import fake_livekit  # noqa: F401
from tests.support.push import PushFakes, push_fakes, push_nodes  # noqa: F401
from tests.support.servers import TestEnv
from tests.test_push import alerts, apns_token, pocket_device, send, wait_offline


async def metric(node: HubNode, name: str, **labels: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def audience_known(*nodes: HubNode) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sizes = [await metric(n, "hub_push_audience_users") for n in nodes]
        if all(s is not None and s >= 0 for s in sizes):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the push audience was never read")


async def test_messages_to_users_without_a_token_queue_no_push_job_and_to_a_holder_they_do(
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    node_a, node_b = await push_nodes()
    api = Api(node_a.url)
    alice, bob, carol = await api.register_many("alice", "bob", "carol")
    await make_contacts(api, alice, bob, carol)
    await audience_known(node_a, node_b)
    sender = await Phone(alice).connect(node_a.url)
    try:
        for n in range(5):
            await send(sender, alice, bob, f"no token here {n}")
        await asyncio.sleep(0.3)
        assert not await metric(node_a, "hub_push_jobs_queued_total", kind="messages")
        token = apns_token()
        await pocket_device(node_b.url, carol, "iphone", provider="apns", token=token)
        await send(sender, alice, carol, "carol has a token")
        await push_fakes.apns.wait_for(lambda: len(alerts(push_fakes, token)) == 1)
        assert await metric(node_a, "hub_push_jobs_queued_total", kind="messages") == 1
        assert await metric(node_a, "hub_push_audience_users") == 1
    finally:
        await sender.close()


async def kill_subscriptions_of(test_env: TestEnv, node: HubNode) -> int:
    """Close the node's pub/sub connections at Redis (the node names its connections
    ``<REDIS_PREFIX>:<HUB_NODE_ID>``, and the tests' node ids start with the node's name);
    how many were closed."""
    redis = aioredis.from_url(test_env.servers.redis_url)
    try:
        clients = await redis.client_list(_type="pubsub")
        ours = [
            c
            for c in clients
            if c.get("name", "").startswith(f"{test_env.redis_prefix}:{node.name}-")
        ]
        for client in ours:
            await redis.client_kill_filter(_id=client["id"])
        return len(ours)
    finally:
        await redis.aclose()


async def test_a_token_registered_while_a_nodes_subscription_was_broken_still_gets_its_push(
    test_env: TestEnv,
    push_nodes,  # noqa: F811
    push_fakes: PushFakes,  # noqa: F811
):
    """Node A misses bob's announcement (its subscription is closed, and A is stopped so it
    cannot resubscribe before bob registers on B); once back it must read the token
    holders again rather than trust the set it had."""
    node_a, node_b = await push_nodes()
    api = Api(node_a.url)
    alice, bob = await api.register_many("alice", "bob")
    await make_contacts(api, alice, bob)
    await audience_known(node_a, node_b)
    phone = await Phone(bob, "iphone").connect(node_b.url)
    sender = await Phone(alice).connect(node_a.url)
    token = apns_token()
    pid = node_a.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        assert await kill_subscriptions_of(test_env, node_a) >= 1
        status, body = await Api(node_b.url).request(
            "PUT",
            "/api/devices/iphone/push",
            token=bob.device_tokens["iphone"],
            json={"provider": "apns", "token": token},
        )
        assert status == 200, body
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        await phone.close()
        await wait_offline(node_b.url, bob, "iphone")
        await audience_known(node_a)
        await send(sender, alice, bob, "after the outage")
        await push_fakes.apns.wait_for(lambda: len(alerts(push_fakes, token)) == 1)
    finally:
        await sender.close()
