"""How a gig's fee is split among its band's members: a plan the owner or an admin makes,
equally or as given shares, that any member may read.

Access is the gigs' own rule (``access_gig``: a stranger gets ``not_found``, exactly as for a
gig that does not exist) and the bands' (``require_manager`` to change it). The split is saved
only against the fee it was computed from; ``stale`` says when the fee has moved on since.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.bands.service import require_manager
from hub.clock import Clock
from hub.errors import Conflict, NotFound
from hub.payments.ports import GigAccess, Splits
from hub.payments.rules import (
    SplitMode,
    checked_shares,
    equal_split,
    refuse_cancelled,
    split_is_stale,
)
from hub.payments.views import split_view
from storage.sql.payments_splits import ShareRow

Share = ShareRow  # what the transports may name: one member's part of a gig's fee


class SplitService:
    def __init__(self, *, splits: Splits, gigs: GigAccess, clock: Clock) -> None:
        self._splits = splits
        self._gigs = gigs
        self._clock = clock

    async def set_split(
        self, user_id: str, gig_id: str, mode: SplitMode, shares: Sequence[ShareRow] = ()
    ) -> dict[str, Any]:
        """Split the gig's fee among the band's members (owner or admin only): equally, or as
        given shares that add up to the fee exactly. Replaces any earlier split."""
        gig, band, role = await self._gigs.access_gig(user_id, gig_id)
        require_manager(role, "split a gig's fee")
        refuse_cancelled(gig.status)
        fee, currency = gig.details.fee_amount, gig.details.currency
        if mode == "equal":
            rows = equal_split(fee, band.member_ids)
        else:
            checked_shares(fee, band.member_ids, shares)
            rows = list(shares)
        saved = await self._splits.save_split(
            gig.id,
            mode=mode,
            total=fee,
            currency=currency,
            shares=rows,
            updated_by=user_id,
            now=self._clock(),
        )
        if saved is None:
            raise Conflict("the gig's fee changed meanwhile; split it again")
        return split_view(saved, stale=split_is_stale(saved, fee, currency))

    async def split(self, user_id: str, gig_id: str) -> dict[str, Any]:
        """The gig's split, for any member of its band."""
        gig, _, _ = await self._gigs.access_gig(user_id, gig_id)
        split = await self._splits.split(gig.id)
        if split is None:
            raise NotFound("this gig's fee has not been split yet")
        return split_view(
            split, stale=split_is_stale(split, gig.details.fee_amount, gig.details.currency)
        )
