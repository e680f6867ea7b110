"""Presence: a user is online while any of their devices is connected to any node.

Each connection is a record with a time to live that this node refreshes on a heartbeat; a
node that dies stops refreshing, and any node's sweep takes its devices offline within one
TTL. Changes are announced to every node, which pushes them to the subscribers it holds;
who may subscribe to whom is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from hub.clock import Clock
from hub.errors import Forbidden, RateLimited
from hub.fanout import Fanout, PresenceChange
from storage.redis.presence import LiveConnection, RedisDeviceRegistry
from storage.sql.bands import MembershipStore
from storage.sql.users import UserStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PresenceState:
    user_id: str
    status: str
    last_seen: int | None

    def as_payload(self) -> dict[str, object]:
        return {"userId": self.user_id, "status": self.status, "lastSeen": self.last_seen}


class PresenceService:
    def __init__(
        self,
        *,
        registry: RedisDeviceRegistry,
        memberships: MembershipStore,
        users: UserStore,
        fanout: Fanout,
        clock: Clock,
        node_id: str,
        ttl_seconds: int,
        max_devices_per_user: int,
    ) -> None:
        self._registry = registry
        self._memberships = memberships
        self._users = users
        self._fanout = fanout
        self._clock = clock
        self._node_id = node_id
        self._ttl_seconds = ttl_seconds
        self._max_devices = max_devices_per_user
        self._local: dict[str, LiveConnection] = {}

    @property
    def local_connection_count(self) -> int:
        return len(self._local)

    async def connect(self, user_id: str, device_id: str, conn_id: str) -> None:
        """Register a live connection; refused past the per-user device limit."""
        conn = LiveConnection(user_id, self._node_id, conn_id, device_id)
        outcome = await self._registry.connect(
            conn, now_ms=self._clock(), max_devices=self._max_devices
        )
        if outcome < 0:
            raise RateLimited(
                f"at most {self._max_devices} devices may be connected at once",
                retry_after_seconds=self._ttl_seconds,
            )
        self._local[conn_id] = conn
        if outcome == 1:
            await self._fanout.announce_presence(PresenceChange(user_id, "online", None))

    async def disconnect(self, conn_id: str) -> None:
        conn = self._local.pop(conn_id, None)
        if conn is None:
            return
        now = self._clock()
        if await self._registry.disconnect(conn, now_ms=now):
            await self._went_offline(conn.user_id, now)

    async def _went_offline(self, user_id: str, last_seen: int) -> None:
        await self._fanout.announce_presence(PresenceChange(user_id, "offline", last_seen))
        await self._users.set_last_seen(user_id, last_seen)

    async def heartbeat_once(self) -> None:
        """Refresh this node's connections, then sweep every node's expired ones."""
        now = self._clock()
        for user_id in await self._registry.refresh(list(self._local.values()), now_ms=now):
            await self._fanout.announce_presence(PresenceChange(user_id, "online", None))
        for user_id, last_seen in await self._registry.sweep(now_ms=now):
            await self._went_offline(user_id, last_seen)

    async def run_heartbeats(self) -> None:
        """Until cancelled: a heartbeat every third of the TTL, surviving Redis outages."""
        interval = max(1.0, self._ttl_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.heartbeat_once()
            except Exception:
                log.warning("presence heartbeat failed; will retry", exc_info=True)

    async def disconnect_all_local(self) -> None:
        for conn_id in list(self._local):
            with contextlib.suppress(Exception):
                await self.disconnect(conn_id)

    async def visible_users(self, viewer_id: str, user_ids: list[str]) -> set[str]:
        others = [u for u in user_ids if u != viewer_id]
        visible = await self._memberships.visible_among(viewer_id, others) if others else set()
        if viewer_id in user_ids:
            visible.add(viewer_id)
        return visible

    async def states_for(self, viewer_id: str, user_ids: list[str]) -> list[PresenceState]:
        """Current presence of users the viewer shares a band or conversation with.

        Anyone else is refused as a whole (``forbidden``): the answer never tells a stranger
        whether someone exists or is online.
        """
        wanted = list(dict.fromkeys(user_ids))
        visible = await self.visible_users(viewer_id, wanted)
        hidden = [u for u in wanted if u not in visible]
        if hidden:
            raise Forbidden(
                "presence is visible only to people who share a band or a conversation",
                details={"users": hidden[:50]},
            )
        stored = await self._registry.presence_of(wanted, now_ms=self._clock())
        missing_seen = [s.user_id for s in stored if not s.online and s.last_seen_ms is None]
        db_seen = await self._users.last_seen_of(missing_seen) if missing_seen else {}
        return [
            PresenceState(
                s.user_id,
                "online" if s.online else "offline",
                None if s.online else (s.last_seen_ms or db_seen.get(s.user_id)),
            )
            for s in stored
        ]
