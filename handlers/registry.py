"""The sockets this node holds: who each one is, its event budget, whom it watches.

Handlers never see the registry: each event's handler gets its own connection as a
``CallerConnection``, which can only record presence watches and extend its session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field

from hub.presence.ports import WatchOutcome
from hub.rate_limits import TokenBucket


@dataclass(slots=True, eq=False)
class ConnectionState:
    """One socket held here (``eq=False``: kept in sets by identity)."""

    sid: str
    user_id: str
    session_id: str
    device_id: str
    conn_id: str
    eio_sid: str
    bucket: TokenBucket
    token_expires_at_ms: int
    expiry_timer: asyncio.TimerHandle | None = None
    watching: set[str] = field(default_factory=set)
    # Revocations that reached this connection: a presence subscription whose visibility
    # check one crossed is not recorded (see ``PresenceService.subscribe``).
    revocations: int = 0
    # Set once its session ended here: it is being told and disconnected (only once).
    ending: bool = False
    caller: CallerConnection = field(init=False)


class CallerConnection:
    """The connection an event came in on, as its handler may touch it (satisfies
    ``hub.presence.ports.PresenceWatch``)."""

    __slots__ = ("_registry", "_state")

    def __init__(self, registry: ConnectionRegistry, state: ConnectionState) -> None:
        self._registry = registry
        self._state = state

    @property
    def revocations(self) -> int:
        return self._state.revocations

    @property
    def session_id(self) -> str:
        return self._state.session_id

    def watch(
        self, user_ids: Collection[str], *, unless_revoked_since: int, at_most: int
    ) -> WatchOutcome:
        state = self._state
        if state.revocations != unless_revoked_since:
            return "revoked_meanwhile"
        if len(state.watching.union(user_ids)) > at_most:
            return "too_many"
        self._registry.watch(state, user_ids)
        return "watching"

    def unwatch(self, user_ids: Collection[str]) -> None:
        self._registry.unwatch(self._state, user_ids)

    def extend_session(self, expires_at_ms: int) -> int:
        """Keep the socket past its token's expiry, up to ``expires_at_ms`` (never
        shortened); the new deadline. The expiry timer finds it when it fires."""
        state = self._state
        state.token_expires_at_ms = max(state.token_expires_at_ms, expires_at_ms)
        return state.token_expires_at_ms


class ConnectionRegistry:
    def __init__(self) -> None:
        self._by_sid: dict[str, ConnectionState] = {}
        self._by_user: dict[str, set[ConnectionState]] = {}
        self._by_session: dict[str, set[ConnectionState]] = {}
        self._by_conn: dict[str, ConnectionState] = {}
        self._watchers: dict[str, set[ConnectionState]] = {}

    def __len__(self) -> int:
        return len(self._by_sid)

    def add(self, state: ConnectionState) -> None:
        state.caller = CallerConnection(self, state)
        self._by_sid[state.sid] = state
        self._by_user.setdefault(state.user_id, set()).add(state)
        self._by_session.setdefault(state.session_id, set()).add(state)
        self._by_conn[state.conn_id] = state

    def remove(self, sid: str) -> ConnectionState | None:
        state = self._by_sid.pop(sid, None)
        if state is None:
            return None
        _discard(self._by_user, state.user_id, state)
        _discard(self._by_session, state.session_id, state)
        if self._by_conn.get(state.conn_id) is state:
            del self._by_conn[state.conn_id]
        self.unwatch(state, list(state.watching))
        if state.expiry_timer is not None:
            state.expiry_timer.cancel()
        return state

    def by_sid(self, sid: str) -> ConnectionState | None:
        return self._by_sid.get(sid)

    def connections_of(self, user_id: str) -> Collection[ConnectionState]:
        return self._by_user.get(user_id, ())

    def connections_of_session(self, session_id: str) -> Collection[ConnectionState]:
        return self._by_session.get(session_id, ())

    def by_conn(self, conn_id: str) -> ConnectionState | None:
        return self._by_conn.get(conn_id)

    def watchers_of(self, user_id: str) -> Collection[ConnectionState]:
        return self._watchers.get(user_id, ())

    def watch(self, state: ConnectionState, user_ids: Collection[str]) -> None:
        for user_id in user_ids:
            state.watching.add(user_id)
            self._watchers.setdefault(user_id, set()).add(state)

    def unwatch(self, state: ConnectionState, user_ids: Collection[str]) -> None:
        for user_id in user_ids:
            state.watching.discard(user_id)
            _discard(self._watchers, user_id, state)

    def revoke(self, viewer_id: str, user_ids: Collection[str]) -> None:
        """Every connection of ``viewer_id`` held here stops watching ``user_ids``, and
        counts the revocation even if it was not watching them yet."""
        for state in list(self.connections_of(viewer_id)):
            state.revocations += 1
            self.unwatch(state, user_ids)


def _discard(index: dict[str, set[ConnectionState]], key: str, state: ConnectionState) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(state)
        if not members:
            del index[key]
