"""The payment rules, pure: how a gateway's report moves a payment, what a request does with
the idempotency record it found, what makes two requests "the same", who may pay for a gig,
and how a gig's fee is split. Nothing here reads a clock or a database: ``now`` and the rows
are passed in, so every rule has a plain unit test (``tests/test_payment_rules.py``).

The names of the ledger's statuses, methods and split modes are written here once; the
views, the REST queries and the service import them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import orjson

from hub.errors import Conflict, InvalidPayload, NotFound
from storage.sql.payments import GigMoney
from storage.sql.payments_idempotency import IdempotencyRow
from storage.sql.payments_splits import ShareRow, SplitRow

PaymentMethod = Literal["stripe", "paypal"]
PaymentStatus = Literal[
    "pending", "succeeded", "failed", "refunded", "partially_refunded", "disputed"
]
SplitMode = Literal["equal", "shares"]
# The gateway behind a method, as the webhook-events table names it.
GatewayName = Literal["stripe", "braintree"]
# What a gateway says happened to a payment; ``next_status`` turns it into a ledger move.
GatewayFact = Literal[
    "succeeded", "failed", "refunded", "settlement_declined", "disputed", "dispute_won"
]
IdempotencyVerdict = Literal["run", "replay", "mismatch", "wait", "retake"]

MAX_PAYMENT_AMOUNT = 99_999_999  # Stripe's ceiling in minor units (999,999.99 in EUR)
MAX_SPLIT_SHARES = 500

# fact → (the status it moves to, the statuses it may move from). Anything else is no move:
# that is what makes a late or out-of-order webhook harmless.
# - succeeded: also from failed, since a Stripe PaymentIntent may fail one attempt and then
#   succeed with another payment method.
# - failed: only from pending; a failed attempt reported after success changes nothing.
# - refunded: also from pending, in case the refund's event overtakes the success's.
# - settlement_declined: Braintree reverses a sale it had accepted (succeeded → failed).
# - refunded: in full (a partial refund moves ``refunded_amount``, see the ledger), or a
#   dispute lost.
TRANSITIONS: Mapping[GatewayFact, tuple[PaymentStatus, frozenset[str]]] = {
    "succeeded": ("succeeded", frozenset({"pending", "failed"})),
    "failed": ("failed", frozenset({"pending"})),
    "refunded": (
        "refunded",
        frozenset({"pending", "succeeded", "partially_refunded", "disputed"}),
    ),
    "settlement_declined": ("failed", frozenset({"pending", "succeeded"})),
    # A chargeback: the money is held back until the dispute closes (lost: ``refunded``).
    "disputed": ("disputed", frozenset({"succeeded", "partially_refunded"})),
    "dispute_won": ("succeeded", frozenset({"disputed"})),
}
REFUNDABLE = frozenset({"succeeded", "partially_refunded"})
NO_MOVE: tuple[None, frozenset[str]] = (None, frozenset())


def next_status(current: str, fact: GatewayFact) -> PaymentStatus | None:
    """The status a payment moves to when its gateway reports ``fact``, or None for no move."""
    target, allowed = TRANSITIONS[fact]
    return target if current in allowed else None


def transition(fact: GatewayFact | None) -> tuple[PaymentStatus | None, frozenset[str]]:
    """``fact``'s move as the ledger applies it, a compare-and-set: (target, allowed from).
    A fact of None (an event that is only acknowledged) moves nothing."""
    return NO_MOVE if fact is None else TRANSITIONS[fact]


def idempotency_verdict(
    record: IdempotencyRow, request_hash: str, owner: str, now: int, stale_after_ms: int
) -> IdempotencyVerdict:
    """What a request holding ``owner`` does with the record it found for its key: run it
    (the record is its own), replay the stored answer, refuse another body under the same
    key, wait for the owner still running, or retake a record whose owner went silent."""
    if record.request_hash != request_hash:
        return "mismatch"
    if record.state == "done":
        return "replay"
    if record.owner_token == owner:
        return "run"
    if now - record.locked_at >= stale_after_ms:
        return "retake"
    return "wait"


def request_fingerprint(method: PaymentMethod, fields: Mapping[str, Any]) -> str:
    """A stable hash of what was asked, so the same key with another body is caught. The
    records in the database hold these hashes: changing how they are made would turn every
    pending retry into a mismatch, so the test pins them."""
    canonical = orjson.dumps({"method": method, **fields}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def payment_fields(
    gig_id: str, amount: int | None, currency: str, nonce: str | None
) -> dict[str, Any]:
    """What a payment request asks, as it is fingerprinted (the amount only when the app
    named one, the nonce only where a method takes one)."""
    fields: dict[str, Any] = {"gigId": gig_id, "currency": currency}
    if amount is not None:
        fields["amount"] = amount
    if nonce is not None:
        fields["nonce"] = nonce
    return fields


def outstanding(fee: int, paid: int, pending: int) -> int:
    """What is still to pay on a gig: its fee less what succeeded (net of refunds and
    disputes) and what is pending; never below zero."""
    return max(0, fee - paid - pending)


def payment_amount(money: GigMoney | None, requested: int | None, currency: str) -> int:
    """The amount of a new payment, decided by the hub from the gig as it is under its lock:
    the whole outstanding amount, or the part the app asked for if that is no more. A gig
    with nothing to pay (no fee, fully paid or pending, cancelled) is ``conflict`` with
    ``details.outstanding``."""
    if money is None:
        raise NotFound("no such gig")
    if currency != money.currency:
        raise Conflict(
            f"the gig's fee is in {money.currency}", details={"currency": money.currency}
        )
    left = outstanding(money.fee, money.paid, money.pending)
    details = {"outstanding": left}
    if money.gig_status == "cancelled":
        raise Conflict("the gig is cancelled", details=details)
    if money.fee <= 0:
        raise Conflict("the gig has no fee to pay", details=details)
    if left == 0:
        raise Conflict("nothing is outstanding on this gig", details=details)
    if requested is not None and requested > left:
        raise Conflict(f"only {left} is outstanding on this gig", details=details)
    return left if requested is None else requested


def refund_amount(status: str, amount: int, refunded: int, requested: int | None) -> int:
    """What a refund gives back: all that is left of the payment, or the part asked for if
    that is no more; a payment that is not (still) paid is ``conflict``, as is asking more
    than is left (``details.refundable``)."""
    left = amount - refunded if status in REFUNDABLE else 0
    if left <= 0:
        raise Conflict(f"a {status} payment cannot be refunded", details={"refundable": 0})
    if requested is not None and requested > left:
        raise Conflict(f"only {left} can be refunded", details={"refundable": left})
    return left if requested is None else requested


def refund_fields(payment_id: str, amount: int | None) -> dict[str, Any]:
    """What a refund request asks, as it is fingerprinted."""
    fields: dict[str, Any] = {"refund": payment_id}
    if amount is not None:
        fields["amount"] = amount
    return fields


def refuse_cancelled(gig_status: str) -> None:
    """A cancelled gig is neither paid for nor split."""
    if gig_status == "cancelled":
        raise Conflict("the gig is cancelled")


def equal_split(total: int, member_ids: Collection[str]) -> list[ShareRow]:
    """Everyone gets ``total // n``; the remainder goes one minor unit each to the first
    members in user-id order, so the same band and fee always split the same way and the
    shares add up to ``total`` exactly."""
    ordered = sorted(set(member_ids))
    if not ordered:
        raise Conflict("the band has no members to split the fee among")
    base, rest = divmod(total, len(ordered))
    return [ShareRow(user, base + (1 if i < rest else 0)) for i, user in enumerate(ordered)]


def checked_shares(total: int, member_ids: Collection[str], shares: Sequence[ShareRow]) -> None:
    """Raise unless each share names a distinct current member and they add up to ``total``."""
    named = [s.user_id for s in shares]
    if len(set(named)) != len(named):
        raise InvalidPayload("each member may have one share only")
    strangers = sorted(set(named) - set(member_ids))
    if strangers:
        raise Conflict(
            "shares may go only to the band's members", details={"notMembers": strangers}
        )
    given = sum(s.amount for s in shares)
    if given != total:
        raise Conflict(
            f"the shares add up to {given}, the gig's fee is {total}",
            details={"fee": total, "sum": given},
        )


def split_is_stale(split: SplitRow, fee_amount: int, currency: str) -> bool:
    """The gig's fee or currency changed since the split was made: it must be made again."""
    return split.total != fee_amount or split.currency != currency
