"""The pure payment rules, without servers: the ledger's status moves, the idempotency
verdict, the request fingerprint, who may pay, equal and given splits, and the amount
conversion Braintree needs."""

from __future__ import annotations

import itertools
import uuid
from typing import get_args

import braintree
import braintree.exceptions.http
import pytest
import stripe

from hub.errors import Conflict, InvalidPayload, NotFound
from hub.payments.gateways_braintree import braintree_never_sent, minor_units_to_decimal
from hub.payments.gateways_stripe import stripe_never_sent
from hub.payments.rules import (
    GatewayFact,
    PaymentStatus,
    checked_shares,
    equal_split,
    idempotency_verdict,
    next_status,
    outstanding,
    payment_amount,
    payment_fields,
    refund_amount,
    request_fingerprint,
    split_is_stale,
    transition,
)
from storage.sql.payments import GigMoney
from storage.sql.payments_idempotency import IdempotencyRow
from storage.sql.payments_splits import ShareRow, SplitRow

STATUSES: tuple[PaymentStatus, ...] = get_args(PaymentStatus)
FACTS: tuple[GatewayFact, ...] = get_args(GatewayFact)

# (fact, from) -> to: every move the ledger makes. Any pair not here is no move.
MOVES = {
    ("succeeded", "pending"): "succeeded",
    ("succeeded", "failed"): "succeeded",
    ("failed", "pending"): "failed",
    ("refunded", "pending"): "refunded",
    ("refunded", "succeeded"): "refunded",
    ("refunded", "partially_refunded"): "refunded",
    ("refunded", "disputed"): "refunded",  # a dispute lost
    ("settlement_declined", "pending"): "failed",
    ("settlement_declined", "succeeded"): "failed",
    ("disputed", "succeeded"): "disputed",
    ("disputed", "partially_refunded"): "disputed",
    ("dispute_won", "disputed"): "succeeded",
}


@pytest.mark.parametrize(("fact", "current"), list(itertools.product(FACTS, STATUSES)))
def test_a_gateway_fact_moves_a_payment_only_along_the_table(
    fact: GatewayFact, current: PaymentStatus
) -> None:
    assert next_status(current, fact) == MOVES.get((fact, current))


def test_the_compare_and_set_the_ledger_applies_is_the_same_table() -> None:
    for fact in FACTS:
        target, allowed = transition(fact)
        assert {current for current in STATUSES if next_status(current, fact)} == allowed
        assert all(MOVES[(fact, current)] == target for current in allowed)
    assert transition(None) == (None, frozenset())  # an acknowledged event moves nothing


def record(
    *,
    request_hash: str = "h1",
    state: str = "in_progress",
    owner: str = "owner-a",
    locked_at: int = 1_000,
) -> IdempotencyRow:
    return IdempotencyRow(
        user_id="u",
        key="k",
        request_hash=request_hash,
        state=state,
        owner_token=owner,
        locked_at=locked_at,
        payment_id=None,
        response_status=201 if state == "done" else None,
        response_body="{}" if state == "done" else None,
    )


def test_the_idempotency_verdict() -> None:
    stale = 90_000
    # Another body under the key is refused before anything else, even once answered.
    assert idempotency_verdict(record(state="done"), "h2", "owner-b", 1_000, stale) == "mismatch"
    assert idempotency_verdict(record(), "h2", "owner-a", 1_000, stale) == "mismatch"
    assert idempotency_verdict(record(state="done"), "h1", "owner-b", 1_000, stale) == "replay"
    assert idempotency_verdict(record(), "h1", "owner-a", 1_000, stale) == "run"
    # Someone else's running request: wait, until its lease is stale, then take it over.
    assert idempotency_verdict(record(), "h1", "owner-b", 1_000 + stale - 1, stale) == "wait"
    assert idempotency_verdict(record(), "h1", "owner-b", 1_000 + stale, stale) == "retake"
    # An answered record is replayed, however old.
    assert idempotency_verdict(record(state="done"), "h1", "owner-b", 10**12, stale) == "replay"


GIG = "0b5c9d52-8f57-4a3c-9a43-2f3c1b6e7d11"


def test_fingerprints_are_those_the_database_already_holds() -> None:
    """Records written before this code keep matching their retries."""
    stripe = request_fingerprint("stripe", payment_fields(GIG, 1250, "EUR", None))
    paypal = request_fingerprint("paypal", payment_fields(GIG, 1250, "EUR", "fake-valid-nonce"))
    assert stripe == "167b09fa3e42e01450e4cb9db4429158065472e4c786f4ae42152fa35c0ad964"
    assert paypal == "a1207431ef0b441dd4dbe26f15926d2c63f11c3ff7c5b4fe544d02a8fff9b8f3"


def test_a_fingerprint_changes_with_everything_asked_and_nothing_else() -> None:
    base = request_fingerprint("stripe", payment_fields(GIG, 1250, "EUR", None))
    reordered = {"currency": "EUR", "amount": 1250, "gigId": GIG}
    assert request_fingerprint("stripe", reordered) == base
    others = [
        request_fingerprint("paypal", payment_fields(GIG, 1250, "EUR", None)),
        request_fingerprint("stripe", payment_fields(str(uuid.uuid4()), 1250, "EUR", None)),
        request_fingerprint("stripe", payment_fields(GIG, 1251, "EUR", None)),
        request_fingerprint("stripe", payment_fields(GIG, 1250, "USD", None)),
        request_fingerprint("stripe", payment_fields(GIG, 1250, "EUR", "nonce")),
    ]
    assert base not in others and len(set(others)) == len(others)


def money(status: str = "confirmed", fee: int = 1000, paid: int = 0, pending: int = 0) -> GigMoney:
    return GigMoney(status, fee, "EUR", paid, pending)


def test_outstanding_is_the_fee_less_what_succeeded_and_what_is_pending() -> None:
    assert outstanding(1000, 300, 200) == 500
    assert outstanding(1000, 1000, 0) == 0
    assert outstanding(1000, 900, 300) == 0  # never negative (a fee lowered after paying)


def test_the_hub_decides_the_amount_and_refuses_what_is_not_owed() -> None:
    assert payment_amount(money(), None, "EUR") == 1000
    assert payment_amount(money(paid=300, pending=200), None, "EUR") == 500
    assert payment_amount(money(paid=300), 700, "EUR") == 700
    assert payment_amount(money("played", paid=999), 1, "EUR") == 1
    refused = [
        (money(paid=300), 701),  # more than outstanding
        (money(fee=0), None),  # no fee
        (money(paid=1000), None),  # fully paid
        (money(paid=600, pending=400), 1),  # fully paid or pending
        (money("cancelled"), None),
    ]
    for gig, requested in refused:
        with pytest.raises(Conflict) as refusal:
            payment_amount(gig, requested, "EUR")
        left = outstanding(gig.fee, gig.paid, gig.pending)
        assert refusal.value.details == {"outstanding": left}, (gig, requested)
    with pytest.raises(Conflict) as wrong:
        payment_amount(money(), None, "USD")
    assert wrong.value.details == {"currency": "EUR"}
    with pytest.raises(NotFound):
        payment_amount(None, None, "EUR")


def test_an_equal_split_hands_the_remainder_out_by_user_id() -> None:
    members = ["c", "a", "b"]
    assert equal_split(1000, members) == [
        ShareRow("a", 334),
        ShareRow("b", 333),
        ShareRow("c", 333),
    ]
    assert equal_split(1001, {"b", "c", "a"}) == [
        ShareRow("a", 334),
        ShareRow("b", 334),
        ShareRow("c", 333),
    ]
    assert equal_split(0, ["a"]) == [ShareRow("a", 0)]
    assert equal_split(2, ["a", "a", "b", "c"]) == [
        ShareRow("a", 1),
        ShareRow("b", 1),
        ShareRow("c", 0),
    ]
    with pytest.raises(Conflict):
        equal_split(1000, [])


@pytest.mark.parametrize(("total", "members"), [(1, 7), (999_999, 13), (10**12, 500), (5, 5)])
def test_an_equal_split_always_adds_up_and_differs_by_at_most_one(total: int, members: int) -> None:
    shares = equal_split(total, [f"user-{i:03}" for i in range(members)])
    amounts = [s.amount for s in shares]
    assert sum(amounts) == total and max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=True)


def test_given_shares_name_distinct_members_and_add_up_to_the_fee() -> None:
    members = {"a", "b"}
    checked_shares(500, members, [ShareRow("a", 300), ShareRow("b", 200)])
    checked_shares(500, members, [ShareRow("a", 500)])  # members left out get nothing
    with pytest.raises(InvalidPayload):
        checked_shares(500, members, [ShareRow("a", 250), ShareRow("a", 250)])
    with pytest.raises(Conflict) as stranger:
        checked_shares(500, members, [ShareRow("a", 250), ShareRow("z", 250)])
    assert stranger.value.details == {"notMembers": ["z"]}
    with pytest.raises(Conflict) as short:
        checked_shares(500, members, [ShareRow("a", 250), ShareRow("b", 249)])
    assert short.value.details == {"fee": 500, "sum": 499}


def test_a_split_is_stale_once_the_fee_or_its_currency_moves() -> None:
    split = SplitRow("g", "equal", 1000, "EUR", "u", 0, (ShareRow("u", 1000),))
    assert not split_is_stale(split, 1000, "EUR")
    assert split_is_stale(split, 1001, "EUR")
    assert split_is_stale(split, 1000, "USD")


@pytest.mark.parametrize(
    ("amount", "currency", "decimal"),
    [
        (1250, "EUR", "12.50"),
        (5, "EUR", "0.05"),
        (1250, "JPY", "1250"),
        (1250, "KWD", "1.250"),
        (50_005, "BHD", "50.005"),
        (50_000, "JPY", "50000"),
        (99_999_999, "USD", "999999.99"),
    ],
)
def test_minor_units_become_braintree_decimals_by_the_currency_exponent(
    amount: int, currency: str, decimal: str
) -> None:
    assert minor_units_to_decimal(amount, currency) == decimal


def test_a_refund_gives_back_at_most_what_is_left_of_a_paid_payment() -> None:
    assert refund_amount("succeeded", 3000, 0, None) == 3000
    assert refund_amount("succeeded", 3000, 0, 1000) == 1000
    assert refund_amount("partially_refunded", 3000, 1000, None) == 2000
    for status, refunded, requested, left in [
        ("partially_refunded", 1000, 2001, 2000),
        ("refunded", 3000, None, 0),
        ("pending", 0, None, 0),
        ("disputed", 0, 1, 0),
        ("failed", 0, None, 0),
    ]:
        with pytest.raises(Conflict) as refusal:
            refund_amount(status, 3000, refunded, requested)
        assert refusal.value.details == {"refundable": left}, status


def test_only_a_call_that_never_reached_the_gateway_counts_as_not_charged() -> None:
    """A refused connection, a connect timeout or a 429 fail a payment at once; a read
    timeout, a reset after sending or a 5xx leave it to the reconciler."""
    http = braintree.exceptions.http
    assert braintree_never_sent(http.timeout_error.ConnectTimeoutError("connect timed out"))
    assert braintree_never_sent(braintree.exceptions.TooManyRequestsError())
    refused = "HTTPConnectionPool: NewConnectionError: [Errno 111] Connection refused"
    assert braintree_never_sent(http.ConnectionError(refused))
    assert not braintree_never_sent(http.ConnectionError("Connection reset by peer"))
    assert not braintree_never_sent(http.timeout_error.ReadTimeoutError("read timed out"))
    assert not braintree_never_sent(braintree.exceptions.ServerError())
    assert not braintree_never_sent(braintree.exceptions.ServiceUnavailableError())
    assert stripe_never_sent(
        stripe.APIConnectionError("(Network error: Cannot connect to host api.stripe.com:443)")
    )
    assert not stripe_never_sent(stripe.APIConnectionError("(Network error: Server disconnected)"))
    assert not stripe_never_sent(stripe.APIError("An unknown error occurred", http_status=500))
