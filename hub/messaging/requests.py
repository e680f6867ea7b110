"""Message requests: what becomes of a direct message to someone who is not a contact.

A direct message between people who share a band, or whose conversation was accepted, is
an ordinary one. Otherwise it opens (or adds to) a **request**: stored and delivered, but
flagged, with no push, no receipts, no presence, typing or calls, until the recipient
accepts it (over REST, or by replying). The requester may send at most
``max_request_messages`` into a pending request and open at most ``requests_per_day`` new
ones; a declined request, or a block either way, refuses every further message.

The rule is pure; ``storage/sql/consent.py`` runs it inside the send's transaction, on the
states it read there, so a batch of many sends is decided with one read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from storage.sql.consent import (
    ConsentDecision,
    ConversationStatus,
    PairState,
    PairWrite,
    Verdict,
)


@dataclass(slots=True)
class _Running:
    status: ConversationStatus | None
    requester: str | None
    messages: int
    changed: bool = False
    opened_at: int | None = None
    added: int = 0


@dataclass(frozen=True, slots=True)
class RequestRule:
    max_request_messages: int
    requests_per_day: int

    def __call__(
        self,
        sends: Sequence[tuple[str, str, str]],
        states: Mapping[tuple[str, str], PairState],
        now_ms: int,
    ) -> ConsentDecision:
        """Decide each (message id, sender, recipient) in order: a batch holding a
        requester's 3rd and 4th message sends the 3rd and refuses the 4th."""
        running: dict[frozenset[str], _Running] = {}
        opened: dict[str, int] = {}
        verdicts: dict[str, Verdict] = {}
        accepted: list[tuple[str, str]] = []
        for message_id, sender, recipient in sends:
            state = states[(sender, recipient)]
            pair = frozenset((sender, recipient))
            now = running.setdefault(
                pair, _Running(state.status, state.requester, state.request_messages)
            )
            opened.setdefault(sender, state.opened_today)
            verdicts[message_id] = self._verdict(state, now, sender, opened, now_ms, accepted)
        writes = [
            PairWrite(
                user_a=min(pair),
                user_b=max(pair),
                status=now.status or "accepted",
                requester=now.requester,
                requested_at=now.opened_at,
                added_messages=now.added,
            )
            for pair, now in sorted(running.items(), key=lambda item: sorted(item[0]))
            if now.changed
        ]
        return ConsentDecision(verdicts, writes, accepted)

    def _verdict(
        self,
        state: PairState,
        now: _Running,
        sender: str,
        opened: dict[str, int],
        now_ms: int,
        accepted: list[tuple[str, str]],
    ) -> Verdict:
        if state.blocked:
            return "refused"
        if now.status == "accepted":
            return "send"
        if state.shares_band:  # band-mates are contacts: their conversation is accepted
            now.status, now.changed = "accepted", True
            return "send"
        if now.status is None:
            if opened[sender] >= self.requests_per_day:
                return "daily_full"
            opened[sender] += 1
            now.status, now.requester, now.opened_at = "pending", sender, now_ms
            now.messages, now.added, now.changed = 1, 1, True
            return "request"
        if sender != now.requester:  # the recipient of the request replies: accepted
            now.status, now.changed = "accepted", True
            accepted.append((sender, state.recipient))
            return "send"
        if now.status == "declined":
            return "refused"
        if now.messages >= self.max_request_messages:
            return "pending_full"
        now.messages += 1
        now.added += 1
        now.changed = True
        return "request"
