"""What the call service and room access need from storage, as small ``Protocol``s.

``storage/redis/calls.py`` (live calls), ``storage/sql/calls.py`` (history),
``storage/sql/bands.py`` (memberships) and ``storage/sql/users.py`` (names) satisfy them
without importing ``hub/``; a test can hand the service in-memory ones instead. The records
that cross (``CallWrite``, ``FinishedCall``) are storage's own dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol, TypeVar

from hub.calls.rules import Notice
from hub.calls.state import CallState
from storage.redis.calls import CallWrite
from storage.sql.calls import FinishedCall

Decision = TypeVar("Decision")


class LiveCalls(Protocol):
    """Calls that have not ended, shared by every node, with the deadlines the sweep keeps."""

    async def create(self, call_id: str, write: CallWrite) -> None:
        """Store a new ringing call and its first deadline."""

    async def load(self, call_id: str) -> dict[str, str] | None:
        """The call's fields (``CallState.to_fields``), or None once it is gone."""

    async def update(
        self,
        call_id: str,
        decide: Callable[[dict[str, str] | None], tuple[CallWrite | None, Decision]],
    ) -> Decision:
        """Apply ``decide`` to the call's current fields and store its write atomically: when
        another node changed the call meanwhile, ``decide`` runs again on the fresh fields, so
        one transition wins. A ``decide`` that raises stores nothing."""

    async def active_calls_of(self, user_ids: Collection[str]) -> dict[str, str]:
        """The answered call each user is in, as far as the links say (they may be stale)."""

    async def claim_due(self, *, now_ms: int, lease_ms: int) -> list[str]:
        """The calls whose deadline passed, each claimed by one node for ``lease_ms``."""

    async def forget_deadline(self, call_id: str) -> None:
        """Drop the deadline of a call that is gone."""

    async def live_call_ids(self) -> list[str]:
        """Every call that has not ended."""


class CallHistory(Protocol):
    """Finished calls, kept for ``GET /api/calls``."""

    async def record(self, call: FinishedCall, participants: Sequence[str]) -> None:
        """Idempotent on the call id: whichever node records a call, it is kept once."""

    async def calls_of(
        self, user_id: str, *, before_started_at: int, before_id: str, limit: int
    ) -> list[FinishedCall]:
        """The user's calls older than (``before_started_at``, ``before_id``), newest first."""


class Memberships(Protocol):
    """Who may call whom, and who is in a band."""

    async def band_member_ids(self, band_id: str) -> set[str]:
        """Empty for a band that does not exist."""

    async def visible_among(self, user_id: str, others: list[str]) -> set[str]:
        """Those of ``others`` who are the user's contacts (``storage/sql/bands.py``)."""


class Named(Protocol):
    @property
    def name(self) -> str: ...


class UserNames(Protocol):
    """Display names for LiveKit tokens (LiveKit shows them to the other participants)."""

    async def get(self, user_id: str) -> Named | None: ...


class CallPushes(Protocol):
    async def call_notices(self, state: CallState, notices: Sequence[Notice]) -> None:
        """After a transition's socket notices: ring the callees' phones that are not
        connected, or stop them ringing."""
