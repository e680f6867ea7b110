"""Message requests (answered by their recipient) and blocks.

A block stops everything between two people, both ways, at once: the contact rule
(``storage/sql/bands.py``) leaves them out from the commit on, presence watches between them
are revoked on every node (the frame a membership end sends), and a call between them ends
through the normal cancel/hangup path. The blocked user is never told: their refusals are
those of any non-contact. Band conversations are not filtered (both stay members).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hub.clock import Clock
from hub.consent.views import (
    BlockList,
    MessageRequestList,
    block_list,
    contact_accepted,
    request_list,
)
from hub.errors import InvalidPayload, NotFound
from hub.fanout import Delivery, Fanout
from storage.sql.consent import ConsentStore, UnknownUser

LIST_LIMIT = 500
EndCalls = Callable[[str, str], Awaitable[None]]


class ConsentService:
    def __init__(
        self, *, store: ConsentStore, fanout: Fanout, clock: Clock, end_calls: EndCalls
    ) -> None:
        self._store = store
        self._fanout = fanout
        self._clock = clock
        self._end_calls = end_calls

    async def requests(self, user_id: str) -> MessageRequestList:
        return request_list(await self._store.requests_to(user_id, LIST_LIMIT))

    async def accept_request(self, user_id: str, requester: str) -> None:
        """The conversation becomes a normal one both ways; the requester's devices hear it."""
        if not await self._store.answer_request(user_id, requester, "accepted"):
            raise NotFound("no pending message request from this user")
        await self.tell_accepted(user_id, requester)

    async def decline_request(self, user_id: str, requester: str) -> None:
        """The request leaves the list; the requester's further messages are refused (they
        are not told)."""
        if not await self._store.answer_request(user_id, requester, "declined"):
            raise NotFound("no pending message request from this user")

    async def tell_accepted(self, user_id: str, requester: str) -> None:
        payload = contact_accepted(user_id).wire()
        await self._fanout.deliver([Delivery(requester, "contact:accepted", payload)])

    async def block(self, blocker: str, blocked: str) -> None:
        if blocker == blocked:
            raise InvalidPayload("you cannot block yourself")
        try:
            await self._store.block(blocker, blocked, self._clock())
        except UnknownUser:
            raise NotFound("no such user") from None
        # Always (also when already blocked): a retry after a failure here completes it.
        await self._fanout.revoke_presence({blocker: [blocked], blocked: [blocker]})
        await self._end_calls(blocker, blocked)

    async def unblock(self, blocker: str, blocked: str) -> None:
        await self._store.unblock(blocker, blocked)

    async def blocks(self, blocker: str) -> BlockList:
        return block_list(await self._store.blocks_by(blocker, LIST_LIMIT))
