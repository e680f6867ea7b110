"""A hub node killed with ``kill -9`` in the middle of traffic: its phones reconnect to the
other node, every acknowledged message is there, and nobody hangs without an answer."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp

from loadtest.protocol import ConnectRefused, RawSocket
from tests.support import Account, Api, Phone, seal
from tests.support.calls import (
    call_nodes,  # noqa: F401  (fixture)
    fake_livekit,  # noqa: F401  (fixture)
    no_event,
    seed_conversation,
)


async def test_acknowledged_messages_survive_a_node_killed_mid_stream(two_hub_nodes):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    senders = await api.register_many(*(f"sender{i}" for i in range(6)))
    readers = await api.register_many(*(f"reader{i}" for i in range(6)))
    # Half the senders and half the readers sit on the node that will die.
    sender_phones = [
        await Phone(s).connect((node_a if i % 2 else node_b).url) for i, s in enumerate(senders)
    ]
    reader_phones = [
        await Phone(r).connect((node_b if i % 2 else node_a).url) for i, r in enumerate(readers)
    ]
    acked: dict[str, list[str]] = {r.id: [] for r in readers}
    killed = asyncio.Event()

    async def stream(index: int) -> None:
        sender, reader, phone = senders[index], readers[index], sender_phones[index]
        for n in range(40):
            payload = {
                "id": str(uuid.uuid4()),
                "to": reader.id,
                **seal(sender, reader, f"{index}:{n}"),
            }
            try:
                ack = await phone.call("message:send", payload, timeout=5)
            except Exception:
                return  # this phone's node died: unacknowledged sends are the app's to retry
            if ack.get("ok"):
                acked[reader.id].append(payload["id"])
            await asyncio.sleep(0.02)

    async def kill_midway() -> None:
        await asyncio.sleep(0.4)
        await node_b.kill()
        killed.set()

    await asyncio.gather(*(stream(i) for i in range(6)), kill_midway())
    assert killed.is_set()
    assert all(acked.values()), "every stream had acknowledged messages before the kill"
    for phone in sender_phones + reader_phones:
        await phone.close()

    for reader in readers:  # each phone reconnects to the surviving node and catches up
        phone = await Phone(reader, "after-crash").connect(node_a.url)
        seen: list[str] = []
        after, more = 0, True
        while more:
            page = await phone.call("message:sync", {"after": after, "limit": 50})
            seen += [m["id"] for m in page["messages"]]
            after = page["messages"][-1]["seq"] if page["messages"] else after
            more = page["more"]
        await phone.close()
        assert len(seen) == len(set(seen)), "no message is stored twice"
        missing = set(acked[reader.id]) - set(seen)
        assert not missing, f"acknowledged but lost: {sorted(missing)[:3]}"


async def test_reconnect_storm_after_a_node_dies_gets_every_device_an_answer(two_hub_nodes):
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    users = [await api.register(f"fan{i}", with_key=False) for i in range(200)]
    devices = [(u, f"device-{d}") for u in users for d in range(10)]  # 2,000 phones, 10 per user
    logins = asyncio.Semaphore(50)

    async def device_token(user: Account, device: str) -> str:
        async with logins:  # a session is one device: each phone logs in as itself
            return await user.token_for(device, node_a.url)

    tokens = await asyncio.gather(*(device_token(u, d) for u, d in devices))
    token_of = {(u.id, d): token for (u, d), token in zip(devices, tokens, strict=True)}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [RawSocket(http) for _ in devices]
        semaphore = asyncio.Semaphore(100)

        async def first_connect(sock: RawSocket, user, device: str) -> None:
            async with semaphore:
                await sock.connect(
                    node_b.url, {"token": token_of[user.id, device], "device": device}, timeout=30
                )

        await asyncio.gather(
            *(first_connect(s, u, d) for s, (u, d) in zip(sockets, devices, strict=True))
        )
        await node_b.kill()

        storm = [RawSocket(http) for _ in devices]
        started = time.monotonic()

        async def reconnect(sock: RawSocket, user, device: str) -> str:
            try:
                await sock.connect(
                    node_a.url, {"token": token_of[user.id, device], "device": device}, timeout=30
                )
                return "connected"
            except ConnectRefused as refused:
                return f"refused:{refused.code}"
            except TimeoutError:
                return "hung"

        outcomes = await asyncio.gather(
            *(reconnect(s, u, d) for s, (u, d) in zip(storm, devices, strict=True))
        )
        elapsed = time.monotonic() - started
        assert "hung" not in outcomes, "every device connects or is refused, none waits forever"
        assert outcomes.count("connected") == len(devices), {
            o for o in outcomes if o != "connected"
        }
        assert elapsed < 30
        await asyncio.gather(*(s.close() for s in storm), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def test_a_call_ringing_when_its_node_dies_is_still_missed_exactly_once(
    call_nodes,  # noqa: F811
    test_env,
):
    node_a, node_b = await call_nodes(ring_seconds=3)
    api = Api(node_b.url)
    alice, bob = await api.register_many("alice", "bob")
    await seed_conversation(test_env.database_url, alice, bob)
    caller = await Phone(alice).connect(node_a.url)
    bob_phone = await Phone(bob).connect(node_b.url)
    try:
        ack = await caller.call("call:invite", {"to": bob.id, "instance": "main", "media": "audio"})
        call_id = ack["call"]["id"]
        await bob_phone.next("call:incoming")
        await node_a.kill()  # the node that took the invite is gone
        assert await bob_phone.next("call:missed", timeout=15) == {"call": call_id}
        await no_event(bob_phone, "call:missed", 3)
        status, history = await api.request("GET", "/api/calls", token=bob.access_token)
        assert status == 200 and [i["outcome"] for i in history["items"]] == ["missed"]
    finally:
        await caller.close()
        await bob_phone.close()
