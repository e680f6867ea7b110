"""Who may hold a push token: the users whose stored messages, reads and calls are worth a
job on the push queue.

Most copies of most messages go to users with no token at all (a desktop, an app that never
asked, a provider this hub does not use). Queuing them anyway cost every message a stream
entry and the worker a token query that finds nothing: 1.27x the hub's CPU per message
with a provider configured and nobody registered. Each node therefore keeps the set of
users with a token in memory, so the question costs a set lookup:

- it is read from PostgreSQL when the node subscribes to the audience channel (at start-up
  and after every Redis reconnect: announcements are missed while away) and again every
  ``REFRESH_SECONDS`` (which also drops users whose last token was removed);
- a registration announces its user to every node *before* the token is stored, so the
  other nodes hear of it while the token is being committed (a node whose event loop lags
  by more than that commit may skip a message stored in those milliseconds: the device that
  registers is in the app's foreground then, where it gets the message by its socket);
- until the set has been read (start-up, a lost subscription, PostgreSQL down) everyone is
  counted in, as if there were no set: the cost comes back, never a missed push.

Too many users counted in (a token removed since the last read) costs one job each; too
few would lose pushes, which is why every doubt counts a user in. The set costs about 13 MB
per 100,000 holders on every node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from hub.metrics import HubMetrics

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0
RETRY_SECONDS = 5.0


class TokenHolders(Protocol):
    async def holders(self) -> set[str]:
        """Every user with a registered push token, as stored now."""


class AudienceChannel(Protocol):
    async def announce(self, user_ids: Collection[str]) -> None: ...

    async def listen(
        self,
        on_users: Callable[[list[str]], Awaitable[None]],
        *,
        on_subscribed: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None: ...


class PushAudience:
    def __init__(
        self,
        tokens: TokenHolders,
        channel: AudienceChannel,
        metrics: HubMetrics,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._tokens = tokens
        self._channel = channel
        self._size = metrics.push_audience_users
        self._size.set(-1)
        self._refresh_seconds = refresh_seconds
        self._users: set[str] = set()
        self._known = False  # False: count everyone in
        # Which subscription is live (None: none): a read counts only if the subscription it
        # began in is still the live one when it ends (none missed announcements meanwhile).
        self._subscription: int | None = None
        self._subscriptions = 0
        self._heard_while_reading: set[str] | None = None
        self._due = asyncio.Event()

    def includes(self, user_id: str) -> bool:
        """Whether this user may hold a push token (a doubt counts as yes)."""
        return not self._known or user_id in self._users

    async def joins(self, user_id: str) -> None:
        """Before a token of this user is stored: every node counts them in from now on.
        Raises ``StorageUnavailable`` when Redis does not answer (the registration is then
        refused, to be retried, rather than stored unheard)."""
        self._add([user_id])
        await self._channel.announce([user_id])

    async def run(self) -> None:
        """Until cancelled (the assembly owns this task): listen to the announcements and
        read the set whenever it is due."""
        listener = asyncio.create_task(
            self._channel.listen(self._heard, on_subscribed=self._subscribed, on_lost=self._lost)
        )
        try:
            while True:
                try:
                    await asyncio.wait_for(self._due.wait(), self._refresh_seconds)
                except TimeoutError:
                    pass
                self._due.clear()
                await self._read()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _read(self) -> None:
        """Only ``run`` calls this, one read at a time."""
        subscription = self._subscription
        if subscription is None:
            return  # read again once subscribed
        heard: set[str] = set()
        self._heard_while_reading = heard
        try:
            stored = await self._tokens.holders()
        except Exception:
            log.warning("push audience: token holders unreadable; retrying", exc_info=True)
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._due.set)
            return
        finally:
            self._heard_while_reading = None
        self._users = stored | heard
        if self._subscription != subscription:
            return  # announcements may have been missed meanwhile: stay in doubt
        if not self._known:
            log.info("push audience: %d users hold a push token", len(self._users))
        self._known = True
        self._size.set(len(self._users))

    def _add(self, user_ids: Collection[str]) -> None:
        self._users.update(user_ids)
        if self._known:
            self._size.set(len(self._users))
        if self._heard_while_reading is not None:
            self._heard_while_reading.update(user_ids)

    async def _heard(self, user_ids: list[str]) -> None:
        self._add(user_ids)

    async def _subscribed(self) -> None:
        self._subscriptions += 1
        self._subscription = self._subscriptions
        self._due.set()

    async def _lost(self) -> None:
        self._subscription = None
        self._known = False
        self._size.set(-1)
