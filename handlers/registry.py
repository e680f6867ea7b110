"""The sockets this node holds: who each one is, its event budget, what it watches."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.rate_limits import TokenBucket

if TYPE_CHECKING:
    from handlers.session import SocketLifecycle

MAX_WATCHED_USERS = 1000


@dataclass(slots=True)
class ConnectionState:
    sid: str
    user_id: str
    device_id: str
    conn_id: str
    bucket: TokenBucket
    token_expires_at_ms: int
    eio_sid: str = ""
    expiry_timer: asyncio.TimerHandle | None = None
    watching: set[str] = field(default_factory=set)


class ConnectionRegistry:
    def __init__(self) -> None:
        self._by_sid: dict[str, ConnectionState] = {}
        self._sid_by_conn: dict[str, str] = {}
        self._sids_by_user: dict[str, set[str]] = defaultdict(set)
        self._watchers: dict[str, set[str]] = defaultdict(set)
        self.lifecycle: SocketLifecycle | None = None
        # Bumped by every revocation applied here: a subscribe whose visibility check raced
        # with one checks again before it starts watching.
        self.revocations = 0

    def __len__(self) -> int:
        return len(self._by_sid)

    def add(self, state: ConnectionState) -> None:
        self._by_sid[state.sid] = state
        self._sid_by_conn[state.conn_id] = state.sid
        self._sids_by_user[state.user_id].add(state.sid)

    def remove(self, sid: str) -> ConnectionState | None:
        state = self._by_sid.pop(sid, None)
        if state is None:
            return None
        self._sid_by_conn.pop(state.conn_id, None)
        sids = self._sids_by_user.get(state.user_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._sids_by_user[state.user_id]
        for watched in state.watching:
            watchers = self._watchers.get(watched)
            if watchers is not None:
                watchers.discard(sid)
                if not watchers:
                    del self._watchers[watched]
        if state.expiry_timer is not None:
            state.expiry_timer.cancel()
        return state

    def by_sid(self, sid: str) -> ConnectionState | None:
        return self._by_sid.get(sid)

    def sid_of_conn(self, conn_id: str | None) -> str | None:
        return self._sid_by_conn.get(conn_id) if conn_id else None

    def has_user(self, user_id: str) -> bool:
        return user_id in self._sids_by_user

    def sids_of_user(self, user_id: str) -> set[str]:
        return self._sids_by_user.get(user_id, set())

    def all_sids(self) -> list[str]:
        return list(self._by_sid)

    def watch(self, sid: str, user_ids: list[str]) -> bool:
        """False when the connection would watch more than ``MAX_WATCHED_USERS``."""
        state = self._by_sid.get(sid)
        if state is None:
            return False
        if len(state.watching | set(user_ids)) > MAX_WATCHED_USERS:
            return False
        for user_id in user_ids:
            state.watching.add(user_id)
            self._watchers[user_id].add(sid)
        return True

    def unwatch(self, sid: str, user_ids: list[str]) -> None:
        state = self._by_sid.get(sid)
        if state is None:
            return
        for user_id in user_ids:
            state.watching.discard(user_id)
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.discard(sid)
                if not watchers:
                    del self._watchers[user_id]

    def unwatch_for_user(self, viewer_id: str, user_ids: list[str]) -> None:
        """Stop every connection of ``viewer_id`` held here from watching ``user_ids``."""
        self.revocations += 1
        for sid in list(self.sids_of_user(viewer_id)):
            self.unwatch(sid, user_ids)

    def watchers_of(self, user_id: str) -> set[str]:
        return self._watchers.get(user_id, set())
