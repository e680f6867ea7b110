"""Typing indicators: relayed to the other side, never stored, throttled per sender."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, cast

from hub.clock import Clock
from hub.errors import Forbidden, InvalidPayload, NotFound
from hub.fanout import Delivery, Fanout
from hub.messaging.views import TypingState, typing_in_band, typing_to_user
from storage.sql.bands import MembershipStore

THROTTLE_MEMORY = 50_000


# The one refusal for a stranger, a pending request, a decline and a block alike.
NOT_A_CONTACT = "typing goes only to contacts (a shared band or an accepted conversation)"


class TypingService:
    def __init__(
        self, *, memberships: MembershipStore, fanout: Fanout, clock: Clock, min_interval_ms: int
    ) -> None:
        self._memberships = memberships
        self._fanout = fanout
        self._clock = clock
        self._min_interval_ms = min_interval_ms
        self._last_sent: OrderedDict[tuple[str, str, str], int] = OrderedDict()

    def _throttled(self, key: tuple[str, str, str], now: int) -> bool:
        """A repeated ``start`` inside the interval is dropped; ``stop`` always goes."""
        last = self._last_sent.get(key)
        return key[2] == "start" and last is not None and now - last < self._min_interval_ms

    def _record(self, key: tuple[str, str, str], now: int) -> None:
        self._last_sent[key] = now
        self._last_sent.move_to_end(key)
        while len(self._last_sent) > THROTTLE_MEMORY:
            self._last_sent.popitem(last=False)

    async def relay(
        self, user_id: str, *, to: str | None, band: str | None, state: TypingState
    ) -> bool:
        """Returns False when the indicator was throttled (not an error: the client may
        send at its own pace)."""
        if (to is None) == (band is None):
            raise InvalidPayload("give exactly one of 'to' or 'band'")
        if to is not None and to == user_id:
            raise InvalidPayload("typing goes to another user")
        target = to if to is not None else band
        assert target is not None
        key, now = (user_id, target, state), self._clock()
        # Throttled first: a dropped indicator costs no query of the membership.
        if self._throttled(key, now):
            return False
        if to is not None:
            if not await self._memberships.visible_among(user_id, [to]):
                raise Forbidden(NOT_A_CONTACT)
            self._record(key, now)
            event = cast("dict[str, Any]", typing_to_user(user_id, to, state))
            await self._fanout.deliver([Delivery(to, "typing", event)])
            return True
        members = await self._memberships.band_member_ids(target)
        if user_id not in members:
            raise NotFound("no such band")  # to a non-member, as if the band did not exist
        self._record(key, now)
        event = cast("dict[str, Any]", typing_in_band(user_id, target, state))
        await self._fanout.deliver([Delivery(m, "typing", event) for m in members - {user_id}])
        return True
