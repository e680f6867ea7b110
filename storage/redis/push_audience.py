"""The announcements that a user now holds a push token, from the node that registered it
to every node (each keeps its own set of such users: ``hub/push/audience.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

import orjson
from redis.asyncio.client import Redis

from storage.failures import translates_failures
from storage.redis.keys import RedisKeys
from storage.redis.pubsub import EdgeHandler, listen_forever

UsersHandler = Callable[[list[str]], Awaitable[None]]


@translates_failures
class RedisPushAudienceChannel:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._channel = keys.push_audience_channel()

    async def announce(self, user_ids: Collection[str]) -> None:
        await self._redis.publish(self._channel, orjson.dumps(list(user_ids)))

    async def listen(
        self, on_users: UsersHandler, *, on_subscribed: EdgeHandler, on_lost: EdgeHandler
    ) -> None:
        """Until cancelled; ``on_subscribed`` after every (re)subscription, ``on_lost`` when
        the subscription broke (announcements meanwhile are missed)."""

        async def on_message(message: bytes) -> None:
            users = orjson.loads(message)
            if isinstance(users, list):
                await on_users([str(u) for u in users])

        await listen_forever(
            self._redis, (self._channel,), on_message, on_subscribed=on_subscribed, on_lost=on_lost
        )
