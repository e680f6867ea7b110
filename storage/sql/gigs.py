"""Gigs: dates and wall-clock times at the venue, money in integer minor units.

A status change is a compare-and-set on the status it was decided from, so two people moving
the same gig at once cannot both win.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from storage.failures import translates_failures
from storage.sql.payments import SUM_GIG_PAYMENTS


@dataclass(frozen=True, slots=True)
class GigDetails:
    """What an owner or admin writes; the status moves only through the state machine."""

    venue_name: str
    date: dt.date
    start_time: dt.time | None
    end_time: dt.time | None
    fee_amount: int
    currency: str
    location_address: str | None
    notes: str | None


@dataclass(frozen=True, slots=True)
class GigRow:
    id: str
    band_id: str
    details: GigDetails
    status: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class GigFilter:
    """Which gigs of the member's bands to list; None means "any"; dates are inclusive."""

    band_id: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    status: str | None = None


GIG_COLUMNS = (
    "id, band_id, venue_name, date, start_time, end_time, fee_amount, currency, "
    "location_address, notes, status, created_at, updated_at"
)
INSERT_GIG = f"""
INSERT INTO gigs (id, band_id, venue_name, date, start_time, end_time, fee_amount, currency,
                  location_address, notes, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'inquiry', $11, $11)
RETURNING {GIG_COLUMNS}
"""
SELECT_GIG = f"SELECT {GIG_COLUMNS} FROM gigs WHERE id = $1"
UPDATE_GIG_DETAILS = f"""
UPDATE gigs SET venue_name = $2, date = $3, start_time = $4, end_time = $5, fee_amount = $6,
                currency = $7, location_address = $8, notes = $9, updated_at = $10
WHERE id = $1 RETURNING {GIG_COLUMNS}
"""
UPDATE_GIG_STATUS_IF = f"""
UPDATE gigs SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2
RETURNING {GIG_COLUMNS}
"""
# The gigs of $1's bands matching the filter, by (date, id), after the cursor $6/$7.
SELECT_GIGS_OF_MEMBER = f"""
SELECT {GIG_COLUMNS} FROM gigs
WHERE band_id IN (SELECT band_id FROM band_members WHERE user_id = $1)
  AND ($2::uuid IS NULL OR band_id = $2::uuid)
  AND ($3::date IS NULL OR date >= $3::date)
  AND ($4::date IS NULL OR date <= $4::date)
  AND ($5::text IS NULL OR status = $5::text)
  AND ($6::date IS NULL OR (date, id) > ($6::date, $7::uuid))
ORDER BY date, id LIMIT $8
"""
# Holds the gig's fee still while a write that was computed from it commits (a fee split).
LOCK_GIG_FEE = "SELECT fee_amount, currency FROM gigs WHERE id = $1 FOR SHARE"
SELECT_BAND_GIGS_FROM = f"""
SELECT {GIG_COLUMNS} FROM gigs WHERE band_id = $1 AND date >= $2 ORDER BY date, id LIMIT $3
"""


def _gig(row: asyncpg.Record) -> GigRow:
    return GigRow(
        id=str(row["id"]),
        band_id=str(row["band_id"]),
        details=GigDetails(
            venue_name=row["venue_name"],
            date=row["date"],
            start_time=row["start_time"],
            end_time=row["end_time"],
            fee_amount=row["fee_amount"],
            currency=row["currency"],
            location_address=row["location_address"],
            notes=row["notes"],
        ),
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _detail_args(d: GigDetails) -> tuple[object, ...]:
    return (
        d.venue_name,
        d.date,
        d.start_time,
        d.end_time,
        d.fee_amount,
        d.currency,
        d.location_address,
        d.notes,
    )


@translates_failures
class GigStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, band_id: str, details: GigDetails, now_ms: int) -> GigRow | None:
        """The new gig (status ``inquiry``), or None when the band is gone."""
        try:
            row = await self._pool.fetchrow(
                INSERT_GIG, uuid.uuid4(), band_id, *_detail_args(details), now_ms
            )
        except asyncpg.ForeignKeyViolationError:
            return None
        return _gig(row)

    async def get(self, gig_id: str) -> GigRow | None:
        row = await self._pool.fetchrow(SELECT_GIG, gig_id)
        return _gig(row) if row else None

    async def update_details(self, gig_id: str, details: GigDetails, now_ms: int) -> GigRow | None:
        row = await self._pool.fetchrow(UPDATE_GIG_DETAILS, gig_id, *_detail_args(details), now_ms)
        return _gig(row) if row else None

    async def set_status_if(
        self, gig_id: str, expected: str, status: str, now_ms: int
    ) -> GigRow | None:
        """The gig with its new status, or None when its status is no longer ``expected``."""
        row = await self._pool.fetchrow(UPDATE_GIG_STATUS_IF, gig_id, expected, status, now_ms)
        return _gig(row) if row else None

    async def of_member(
        self, user_id: str, where: GigFilter, after: tuple[dt.date, str] | None, limit: int
    ) -> list[GigRow]:
        after_date, after_id = after if after else (None, None)
        rows = await self._pool.fetch(
            SELECT_GIGS_OF_MEMBER,
            user_id,
            where.band_id,
            where.date_from,
            where.date_to,
            where.status,
            after_date,
            after_id,
            limit,
        )
        return [_gig(r) for r in rows]

    async def paid_and_pending(self, gig_id: str) -> tuple[int, int]:
        """What the gig's payments add up to: (paid, less refunds and disputes; pending)."""
        row = await self._pool.fetchrow(SUM_GIG_PAYMENTS, gig_id)
        return (int(row["paid"]), int(row["pending"])) if row else (0, 0)

    async def of_band_from(self, band_id: str, first_date: dt.date, limit: int) -> list[GigRow]:
        rows = await self._pool.fetch(SELECT_BAND_GIGS_FROM, band_id, first_date, limit)
        return [_gig(r) for r in rows]
