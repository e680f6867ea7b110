"""Typing indicators: relayed to the other side, never stored, throttled per sender."""

from __future__ import annotations

from collections import OrderedDict

from hub.clock import Clock
from hub.errors import Forbidden, InvalidPayload, NotFound
from hub.fanout import Delivery, Fanout
from storage.bands import MembershipStore

THROTTLE_MEMORY = 50_000


class TypingService:
    def __init__(
        self, *, memberships: MembershipStore, fanout: Fanout, clock: Clock, min_interval_ms: int
    ) -> None:
        self._memberships = memberships
        self._fanout = fanout
        self._clock = clock
        self._min_interval_ms = min_interval_ms
        self._last_sent: OrderedDict[tuple[str, str, str], int] = OrderedDict()

    def _throttled(self, user_id: str, target: str, state: str) -> bool:
        """A repeated ``start`` inside the interval is dropped; ``stop`` always goes."""
        now = self._clock()
        key = (user_id, target, state)
        last = self._last_sent.get(key)
        if state == "start" and last is not None and now - last < self._min_interval_ms:
            return True
        self._last_sent[key] = now
        self._last_sent.move_to_end(key)
        while len(self._last_sent) > THROTTLE_MEMORY:
            self._last_sent.popitem(last=False)
        return False

    async def relay(self, user_id: str, *, to: str | None, band: str | None, state: str) -> bool:
        """Returns False when the indicator was throttled (not an error: the client may
        send at its own pace)."""
        if (to is None) == (band is None):
            raise InvalidPayload("give exactly one of 'to' or 'band'")
        if to is not None:
            if to == user_id:
                raise InvalidPayload("typing goes to another user")
            if not await self._memberships.visible_among(user_id, [to]):
                raise Forbidden("you share no band or conversation with this user")
            if self._throttled(user_id, to, state):
                return False
            await self._fanout.deliver(
                [Delivery(to, "typing", {"from": user_id, "to": to, "state": state})]
            )
            return True
        assert band is not None
        members = await self._memberships.band_member_ids(band)
        if user_id not in members:
            raise NotFound("no such band")  # to a non-member, as if the band did not exist
        if self._throttled(user_id, band, state):
            return False
        payload = {"from": user_id, "band": band, "state": state}
        await self._fanout.deliver([Delivery(m, "typing", payload) for m in members - {user_id}])
        return True
