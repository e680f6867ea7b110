"""What the payment services need from the world, as small protocols: a gateway (one adapter
per gateway in ``hub.payments.gateways_*``), the idempotency records, the ledger, the gig
and band access rules, and the splits. The storage classes and ``GigService`` satisfy them
without knowing it; the unit tests pass in-memory ones.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from hub.payments.rules import GatewayFact, GatewayName, PaymentMethod
from storage.sql.bands import BandRecord
from storage.sql.gigs import GigRow
from storage.sql.payments import AmountRule, NewPayment, PaymentRow, WebhookOutcome
from storage.sql.payments_idempotency import IdempotencyRow
from storage.sql.payments_splits import ShareRow, SplitRow

# Gateways


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One charge as a gateway sees it. ``idempotency_key`` is already scoped to the user,
    and ``payment_id`` (our ledger row) travels with it as metadata / order id. ``nonce``
    is the app's payment method nonce, for the gateways that sell with one (Braintree)."""

    payment_id: str
    gig_id: str
    user_id: str
    amount: int
    currency: str
    idempotency_key: str
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """What the gateway made of a charge. ``succeeded``: it accepted and submitted the sale;
    ``pending``: it has not decided yet (a webhook will). ``client_secret``: what the app
    confirms the payment with, for gateways that confirm in the app (Stripe)."""

    transaction_id: str
    status: Literal["succeeded", "pending"]
    client_secret: str | None = None


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What the app needs to pay with a method: Stripe's publishable key, or a Braintree
    client token for the Drop-in."""

    publishable_key: str | None = None
    client_token: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A verified webhook event. ``fact`` None: acknowledged, moves nothing."""

    event_id: str
    kind: str
    fact: GatewayFact | None
    payment_id: str | None
    transaction_id: str | None
    reason: str | None = None
    # How much of the charge has gone back in all (Stripe's ``amount_refunded``), when the
    # event says: a partial refund moves the ledger by it.
    refunded_total: int | None = None


class OutcomeUnknown(Exception):
    """A charge may have reached the gateway without an answer (a timeout, a connection reset
    after sending, a 5xx): the payment stays ``pending`` until the reconciler asks."""

    def __init__(self, what: str, transaction_id: str | None = None) -> None:
        super().__init__(what)
        self.transaction_id = transaction_id


class PaymentGateway(Protocol):
    """A payment gateway behind one method. Every call that reaches the gateway raises only
    the hub's three gateway answers: ``PaymentFailed`` (declined), ``GatewayRefused`` (it
    refused the hub's own request) or ``GatewayUnavailable`` (it did not answer)."""

    @property
    def method(self) -> PaymentMethod:
        """The method the app names (``stripe``, ``paypal``)."""

    @property
    def name(self) -> GatewayName:
        """The gateway itself (``stripe``, ``braintree``): how its webhook events are kept."""

    @property
    def currencies(self) -> tuple[str, ...]:
        """The ISO 4217 currencies this gateway can charge, as the app is told them."""

    async def client_config(self) -> ClientConfig: ...

    async def charge(self, charge: ChargeRequest, *, resumed: bool) -> ChargeResult:
        """Charge once. ``resumed``: an earlier request for this ledger row may have reached
        the gateway before its node died; the charge must not be made a second time. Raises
        ``OutcomeUnknown`` when the charge may have been made without an answer."""

    async def refund(self, payment: PaymentRow, amount: int, idempotency_key: str) -> None:
        """Give ``amount`` of the payment back through the gateway's own refund (Stripe: a
        Refund with the key; Braintree: ``transaction.refund``, or ``void`` for a sale not
        settled yet, in full only)."""

    async def client_secret(self, transaction_id: str) -> str | None:
        """The secret the app confirms a pending charge with, fetched again (the hub does
        not keep it); None for gateways without one."""

    async def look_up(self, payment: PaymentRow) -> ChargeResult | None:
        """What the gateway made of a charge whose answer was lost: its result, None when the
        gateway proves there is none, ``PaymentFailed`` for a charge it declined; any other
        gateway error means "ask again later"."""

    def verify_webhook(self, payload: str | bytes, signature: str | None) -> GatewayEvent:
        """The event in a webhook, or ``InvalidPayload`` unless ``signature`` is the gateway's
        for ``payload`` (Stripe: the raw body and ``Stripe-Signature``; Braintree: the form
        fields ``bt_payload`` and ``bt_signature``)."""

    async def close(self) -> None: ...


# Storage and the band rules


class IdempotencyRecords(Protocol):
    async def claim(
        self,
        user_id: str,
        key: str,
        request_hash: str,
        owner: str,
        now: int,
        expired_before: int | None = None,
    ) -> IdempotencyRow | None: ...

    async def sweep(self, expired_before: int) -> int: ...

    async def retake(
        self, user_id: str, key: str, stale_owner: str, owner: str, now: int
    ) -> IdempotencyRow | None: ...

    async def release(self, user_id: str, key: str, owner: str) -> None: ...

    async def finish(
        self, user_id: str, key: str, status: int, body: str
    ) -> IdempotencyRow | None: ...


class Ledger(Protocol):
    async def create_pending(
        self, payment: NewPayment, key: str, owner: str, amount_for: AmountRule
    ) -> PaymentRow:
        """Decides the amount with ``amount_for`` under the gig's lock; raises ``LostClaim``
        (writing nothing) if the idempotency record is not ours."""

    async def payment(self, payment_id: str) -> PaymentRow | None: ...

    async def mark_uncertain(
        self, payment_id: str, transaction_id: str | None, now: int
    ) -> PaymentRow | None: ...

    async def clear_uncertain(self, payment_id: str) -> None: ...

    async def record_refund(
        self, payment_id: str, refunded_total: int, now: int
    ) -> PaymentRow | None: ...

    async def uncertain_payments(self, limit: int) -> list[PaymentRow]: ...

    async def attach_transaction(
        self, payment_id: str, transaction_id: str, now: int
    ) -> PaymentRow | None: ...

    async def move_status(
        self,
        payment_id: str,
        status: str,
        allowed_from: Collection[str],
        *,
        transaction_id: str | None,
        reason: str | None,
        now: int,
    ) -> PaymentRow | None: ...

    async def apply_webhook_event(
        self,
        *,
        gateway: str,
        event_id: str,
        kind: str,
        method: str,
        payment_id: str | None,
        transaction_id: str | None,
        status: str | None,
        allowed_from: Collection[str],
        reason: str | None,
        now: int,
        refunded_total: int | None = None,
    ) -> WebhookOutcome: ...

    async def ledger_page(
        self,
        user_id: str,
        *,
        gig_id: str | None,
        band_id: str | None,
        status: str | None,
        before: tuple[int, str] | None,
        limit: int,
    ) -> list[PaymentRow]: ...


class Lease(Protocol):
    async def take(self, ttl_ms: int) -> bool:
        """True when this node now holds the lease for ``ttl_ms`` (one node at a time)."""


class GigAccess(Protocol):
    async def access_gig(self, user_id: str, gig_id: str) -> tuple[GigRow, BandRecord, str]:
        """The gig, its band and the user's role; ``not_found`` unless they are a member
        (``hub.bands.gigs.GigService``)."""

    async def mark_paid_if_covered(self, gig_id: str, band: BandRecord) -> None:
        """Move a ``played`` gig to ``paid`` when its succeeded payments cover the fee."""


class BandRecords(Protocol):
    async def get(self, band_id: str) -> BandRecord | None:
        """The band with its members, for whoever the hub itself must tell (no caller)."""


class Splits(Protocol):
    async def save_split(
        self,
        gig_id: str,
        *,
        mode: str,
        total: int,
        currency: str,
        shares: Sequence[ShareRow],
        updated_by: str,
        now: int,
    ) -> SplitRow | None: ...

    async def split(self, gig_id: str) -> SplitRow | None: ...
