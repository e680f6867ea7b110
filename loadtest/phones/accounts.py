"""Registering a worker's users over REST, as the app does: an account, then its public key.

Bounded: ``register_concurrency`` requests at a time, six attempts per request with backoff,
and a ``429`` stops at once with the hint the operator needs (the hub's per-IP REST limit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from loadtest.phones.world import Pair, Progress, User, World
from loadtest.plan import WorkerPlan

PASSWORD = "load-test-password-1"
Item = TypeVar("Item")


class Registrar:
    """Registers a worker's users (and their public keys, unless idle)."""

    def __init__(self, plan: WorkerPlan, world: World, progress: Progress) -> None:
        self.plan = plan
        self.world = world
        self.progress = progress

    async def register_all(self) -> None:
        users = self.world.users
        done = 0

        async def one(http: aiohttp.ClientSession, user: User) -> None:
            nonlocal done
            await self.register(http, user)
            done += 1
            self.progress("register", done, len(users))

        await self.each(users, one)
        self.progress("register", done, len(users), force=True)

    async def each(
        self, items: Sequence[Item], work: Callable[[aiohttp.ClientSession, Item], Awaitable[None]]
    ) -> None:
        """``work`` on every item, ``register_concurrency`` at a time, over one session."""
        limit = asyncio.Semaphore(self.plan.register_concurrency)
        connector = aiohttp.TCPConnector(limit=self.plan.register_concurrency)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as http:

            async def one(item: Item) -> None:
                async with limit:
                    await work(http, item)

            await asyncio.gather(*(one(i) for i in items))

    async def introduce(self, pairs: list[Pair]) -> None:
        """Make each pair contacts before any socket connects, as bandmates do: the sender
        makes a band and invites the recipient, who accepts. (A direct message to a stranger
        is only a request: three messages, no receipts, until it is accepted.)"""
        await self.each(pairs, self.band_of)

    async def band_of(self, http: aiohttp.ClientSession, pair: Pair) -> None:
        base = self.plan.rest_urls[pair.sender.index % len(self.plan.rest_urls)]
        name = {"name": f"lt-{self.plan.run_id}-{self.plan.index}-{pair.index}"}
        band = await self.request(http, "POST", f"{base}/api/bands", name, pair.sender.token, 201)
        invited = await self.request(
            http,
            "POST",
            f"{base}/api/bands/{band['id']}/members",
            {"userId": pair.recipient.user_id},
            pair.sender.token,
            201,
        )
        invitation = invited["invitation"]["id"]
        url = f"{base}/api/invitations/{invitation}/accept"
        await self.request(http, "POST", url, None, pair.recipient.token, 200)

    async def register(self, http: aiohttp.ClientSession, user: User) -> None:
        plan = self.plan
        base = plan.rest_urls[user.index % len(plan.rest_urls)]
        name = f"lt-{plan.run_id}-{plan.index}-{user.index}"
        body: dict[str, Any] = {"email": f"{name}@example.com", "password": PASSWORD, "name": name}
        if user.offline:  # a phone in a pocket: a device session, and its FCM token
            body["device"] = {"id": user.device, "platform": "android"}
        data = await self.request(http, "POST", f"{base}/api/auth/register", body, None, 201)
        user.user_id = data["user"]["id"]
        user.token = data["accessToken"]
        if user.offline:
            push = {"provider": "fcm", "token": f"lt-fcm-{name}-{user.device}"}
            url = f"{base}/api/devices/{user.device}/push"
            await self.request(http, "PUT", url, push, user.token, 200)
        if plan.with_keys:
            await self.request(
                http,
                "PUT",
                f"{base}/api/users/{user.user_id}/public-key",
                {"publicKey": user.keys.public_b64},
                user.token,
                200,
            )

    async def request(
        self,
        http: aiohttp.ClientSession,
        method: str,
        url: str,
        body: Any,
        token: str | None,
        expected: int,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        last = ""
        for attempt in range(6):
            try:
                async with http.request(method, url, json=body, headers=headers) as response:
                    text = await response.text()
                    if response.status == expected:
                        return await response.json(content_type=None)
                    last = f"HTTP {response.status}: {text[:300]}"
                    self.world.stats.error(f"rest:{response.status}")
                    if response.status == 429:
                        raise RuntimeError(
                            f"{method} {url} was rate limited ({last}); start the hub with "
                            "API_RATE_LIMIT=off (see loadtest/README.md)"
                        )
                    if response.status < 500:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
                self.world.stats.error(f"rest:{type(exc).__name__}")
            await asyncio.sleep(0.2 * 2**attempt)
        raise RuntimeError(f"{method} {url} failed: {last}")
