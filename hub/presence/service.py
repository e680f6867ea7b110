"""Presence: a user is online while any of their devices is connected to any node.

Each connection is a record with a time to live that this node refreshes on a heartbeat; a
node that dies stops refreshing, and any node's sweep takes its devices offline within one
TTL. Changes are announced to every node, which pushes them to the subscribers it holds.
Who may watch whom is decided here, and so is what a subscription does when a revocation
crosses it; the transport only records the watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from hub.clock import Clock
from hub.errors import Conflict, Forbidden, RateLimited, TooLarge
from hub.fanout import ConnectionsEnded, Fanout, UserPresence
from hub.presence.ports import LastSeenStore, LiveDevices, PresenceWatch, SharedSpaces
from storage.redis.presence import LiveConnection

log = logging.getLogger(__name__)

# What one connection may watch: each watched user costs memory on its node and a push per
# change of theirs.
MAX_WATCHED_USERS = 1000
# A subscription checks visibility again when a revocation reached its connection during the
# check; this many revocations in a row, and the client is asked to try again.
SUBSCRIBE_ATTEMPTS = 3


class PresenceService:
    def __init__(
        self,
        *,
        devices: LiveDevices,
        memberships: SharedSpaces,
        last_seen: LastSeenStore,
        fanout: Fanout,
        clock: Clock,
        node_id: str,
        ttl_seconds: int,
        max_devices_per_user: int,
    ) -> None:
        self._devices = devices
        self._memberships = memberships
        self._last_seen = last_seen
        self._fanout = fanout
        self._clock = clock
        self._node_id = node_id
        self._ttl_seconds = ttl_seconds
        self._max_devices = max_devices_per_user
        self._local: dict[str, LiveConnection] = {}

    async def connect(self, user_id: str, device_id: str, conn_id: str) -> None:
        """Register a live connection; refused past the per-user device limit. A device has
        one live socket: an earlier one of it, on whichever node, gets ``session:replaced``
        and is disconnected."""
        conn = LiveConnection(user_id, self._node_id, conn_id, device_id)
        connected = await self._devices.connect(
            conn, now_ms=self._clock(), max_devices=self._max_devices
        )
        outcome = connected.outcome
        if outcome == "too_many_devices":
            raise RateLimited(
                f"at most {self._max_devices} devices may be connected at once",
                retry_after_seconds=self._ttl_seconds,
            )
        self._local[conn_id] = conn
        if connected.replaced:
            by_node: dict[str, list[str]] = {}
            for node_id, old_conn in connected.replaced:
                by_node.setdefault(node_id, []).append(old_conn)
            await self._fanout.end_connections(
                by_node, ConnectionsEnded([], "session:replaced", "new_connection")
            )
        if outcome == "came_online":
            await self._fanout.announce_presence(UserPresence(user_id, "online", None))

    async def disconnect(self, conn_id: str) -> None:
        conn = self._local.pop(conn_id, None)
        if conn is None:
            return
        now = self._clock()
        if await self._devices.disconnect(conn, now_ms=now):
            await self._went_offline(conn.user_id, now)

    async def _went_offline(self, user_id: str, last_seen: int) -> None:
        await self._fanout.announce_presence(UserPresence(user_id, "offline", last_seen))
        await self._last_seen.set_last_seen(user_id, last_seen)

    async def heartbeat_once(self) -> None:
        """Refresh this node's connections, then sweep every node's expired ones."""
        now = self._clock()
        for user_id in await self._devices.refresh(list(self._local.values()), now_ms=now):
            await self._fanout.announce_presence(UserPresence(user_id, "online", None))
        for user_id, last_seen in await self._devices.sweep(now_ms=now):
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
        """On shutdown: take this node's devices offline now rather than after their TTL."""
        failed = 0
        for conn_id in list(self._local):
            try:
                await self.disconnect(conn_id)
            except Exception:
                failed += 1
        if failed:
            log.warning("%d connections could not be recorded as gone; their TTL will", failed)

    async def subscribe(
        self, viewer_id: str, user_ids: Sequence[str], watch: PresenceWatch
    ) -> list[UserPresence]:
        """Start pushing the presence of ``user_ids`` to this connection; their presence now.

        Only users who share a band or a conversation with the viewer (see ``_presence_for``).
        A revocation (a membership ended) that reaches the connection while this checks must
        not be undone by the watch that follows, so the watch is recorded only when none did,
        and the check runs again when one did.
        """
        for _attempt in range(SUBSCRIBE_ATTEMPTS):
            seen = watch.revocations
            presences = await self._presence_for(viewer_id, user_ids)
            outcome = watch.watch(
                [p.user_id for p in presences],
                unless_revoked_since=seen,
                at_most=MAX_WATCHED_USERS,
            )
            if outcome == "watching":
                return presences
            if outcome == "too_many":
                raise TooLarge(f"a connection may watch at most {MAX_WATCHED_USERS} users")
        raise Conflict("who you may see changed while subscribing; subscribe again")

    async def _presence_for(self, viewer_id: str, user_ids: Sequence[str]) -> list[UserPresence]:
        """Current presence of users the viewer shares a band or conversation with.

        Anyone else is refused as a whole (``forbidden``): the answer never tells a stranger
        whether someone exists or is online.
        """
        wanted = list(dict.fromkeys(user_ids))
        others = [u for u in wanted if u != viewer_id]
        visible = await self._memberships.visible_among(viewer_id, others) if others else set()
        hidden = [u for u in others if u not in visible]
        if hidden:
            raise Forbidden(
                "presence is visible only to contacts (a shared band or an accepted conversation)",
                details={"users": hidden[:50]},
            )
        stored = await self._devices.presence_of(wanted, now_ms=self._clock())
        missing_seen = [s.user_id for s in stored if not s.online and s.last_seen_ms is None]
        durable_seen = await self._last_seen.last_seen_of(missing_seen) if missing_seen else {}
        return [
            UserPresence(s.user_id, "online", None)
            if s.online
            else UserPresence(s.user_id, "offline", s.last_seen_ms or durable_seen.get(s.user_id))
            for s in stored
        ]
