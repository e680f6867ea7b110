"""What every capability's builder may use: the opened PostgreSQL pool and Redis client, the
fan-out, the clock, the metrics, and the two stores several capabilities read.

The assembly (``hub/app.py``) opens the resources and makes this once; each capability's
``builder.py`` takes its own settings section and this, and builds its stores and service.
Services themselves never see it: they get their ports.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from redis.asyncio.client import Redis

from hub.clock import Clock
from hub.fanout import Fanout
from hub.metrics import HubMetrics
from hub.rate_limits import SharedLimiter
from storage.redis.keys import RedisKeys
from storage.sql.bands import MembershipStore
from storage.sql.users import UserStore


@dataclass(frozen=True, slots=True)
class Foundation:
    pool: asyncpg.Pool
    redis: Redis
    keys: RedisKeys
    fanout: Fanout
    clock: Clock
    metrics: HubMetrics
    limiter: SharedLimiter
    # Who shares a band or a conversation with whom: accounts, messaging, presence and calls.
    memberships: MembershipStore
    users: UserStore
