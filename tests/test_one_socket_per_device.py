"""One live socket per device, over two hub nodes: a new socket of the same device replaces
the old one, which first gets ``session:replaced`` and is then disconnected, wherever it is."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support import Api, HubNode, Phone


class Watched:
    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.disconnected = asyncio.Event()

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        phone.client.on("disconnect", on_disconnect)


async def test_the_same_device_connecting_twice_keeps_one_live_socket(
    two_hub_nodes: tuple[HubNode, HubNode],
) -> None:
    node_a, node_b = two_hub_nodes
    api = Api(node_a.url)
    alice = await api.register("alice")
    first = Watched(Phone(alice, "phone"))
    await first.phone.connect(node_a.url)
    second = Watched(Phone(alice, "phone"))
    await second.phone.connect(node_b.url)
    try:
        assert await first.phone.next("session:replaced", timeout=2) == {"reason": "new_connection"}
        await asyncio.wait_for(first.disconnected.wait(), 2)
        assert second.phone.client.connected and not second.disconnected.is_set()
        assert (await second.phone.call("message:sync", {"after": 0}))["ok"] is True
        # The replaced socket's disconnect does not take the device offline.
        await asyncio.sleep(0.5)
        status, body = await api.request("GET", "/api/devices", token=alice.access_token)
        assert status == 200, body
        [device] = body["items"]
        assert device["id"] == "phone" and device["online"] is True, body
        # And on the same node too.
        third = Watched(Phone(alice, "phone"))
        await third.phone.connect(node_b.url)
        assert await second.phone.next("session:replaced", timeout=2) == {
            "reason": "new_connection"
        }
        await asyncio.wait_for(second.disconnected.wait(), 2)
        assert third.phone.client.connected
        await third.phone.close()
    finally:
        await first.phone.close()
        await second.phone.close()
