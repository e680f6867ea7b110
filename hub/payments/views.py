"""How payments and splits look on the wire: REST answers and the ``payment:updated`` push.

Each model documents one shape (and feeds the OpenAPI document); the function below it is
the one place that shape is built, as a plain dict (a payment answer is stored byte for byte
for its Idempotency-Key, and pushes must not pay for a model per event).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hub.payments.ports import ClientConfig
from hub.payments.rules import PaymentMethod, PaymentStatus, SplitMode
from hub.protocol.cursors import Page
from hub.protocol.models import View, pushed
from storage.sql.payments import PaymentRow
from storage.sql.payments_splits import ShareRow, SplitRow


class PaymentView(View):
    id: str
    gigId: str
    bandId: str
    userId: str = Field(description="the payer")
    amount: int = Field(description="integer minor units (1250 = 12.50 EUR)")
    refundedAmount: int = Field(description="what went back to the payer (route or webhook)")
    currency: str
    method: PaymentMethod
    status: PaymentStatus
    transactionId: str | None = Field(description="the PaymentIntent or Braintree sale id")
    failureReason: str | None
    createdAt: int
    updatedAt: int


def payment_view(payment: PaymentRow) -> dict[str, Any]:
    return {
        "id": payment.id,
        "gigId": payment.gig_id,
        "bandId": payment.band_id,
        "userId": payment.user_id,
        "amount": payment.amount,
        "refundedAmount": payment.refunded_amount,
        "currency": payment.currency,
        "method": payment.method,
        "status": payment.status,
        "transactionId": payment.transaction_id,
        "failureReason": payment.failure_reason,
        "createdAt": payment.created_at,
        "updatedAt": payment.updated_at,
    }


class PaymentCreated(View):
    payment: PaymentView
    clientSecret: str | None = Field(
        default=None, description="Stripe only: confirm the PaymentIntent with it in the app"
    )


def payment_created(payment: PaymentRow, client_secret: str | None) -> dict[str, Any]:
    """``clientSecret`` only for a gateway that gave one: the PayPal answer has no such key."""
    answer: dict[str, Any] = {"payment": payment_view(payment)}
    if client_secret is not None:
        answer["clientSecret"] = client_secret
    return answer


class PaymentUncertain(View):
    """202: the gateway may have charged without answering. The hub finds out by itself
    (``payment:updated`` follows); do not pay again."""

    payment: PaymentView
    retryable: bool = Field(description="always false: do not pay again")


def payment_uncertain(payment: PaymentRow) -> dict[str, Any]:
    return {"payment": payment_view(payment), "retryable": False}


@pushed("payment:updated")
class PaymentUpdated(View):
    """``payment:updated``, pushed to the band's owner and admins and to the payer."""

    payment: PaymentView


def payment_updated(payment: PaymentRow) -> dict[str, Any]:
    return {"payment": payment_view(payment)}


class PaymentRefunded(View):
    """The payment after a refund: ``refunded`` or ``partially_refunded``."""

    payment: PaymentView


def payment_refunded(payment: PaymentRow) -> dict[str, Any]:
    return {"payment": payment_view(payment)}


class LedgerPage(View):
    items: list[PaymentView]
    nextCursor: str | None = Field(description="opaque: pass it back as cursor (null: no more)")


def ledger_page(page: Page[PaymentRow]) -> dict[str, Any]:
    return {"items": [payment_view(p) for p in page.items], "nextCursor": page.next_cursor}


class MethodView(View):
    method: PaymentMethod
    currencies: list[str] = Field(description="the currencies this method can take")
    publishableKey: str | None = None
    clientToken: str | None = Field(default=None, description="Braintree Drop-in token")
    error: dict[str, Any] | None = Field(
        default=None, description="why clientToken is null: Braintree did not answer"
    )


def method_view(
    method: PaymentMethod,
    currencies: tuple[str, ...],
    config: ClientConfig | None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A configured method with the currencies it takes and what the app needs; with
    ``error`` (and a null ``clientToken``) when its gateway did not answer for it."""
    entry: dict[str, Any] = {"method": method, "currencies": list(currencies)}
    if error is not None:
        entry["clientToken"] = None
        entry["error"] = error
        return entry
    if config is not None and config.publishable_key is not None:
        entry["publishableKey"] = config.publishable_key
    if config is not None and config.client_token is not None:
        entry["clientToken"] = config.client_token
    return entry


class MethodsView(View):
    methods: list[MethodView]


def methods_view(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``entries`` as ``method_view`` built them, in the hub's order of preference."""
    return {"methods": entries}


class WebhookAck(View):
    received: bool
    duplicate: bool = Field(description="this event was applied before; nothing changed")


def webhook_ack(duplicate: bool) -> dict[str, Any]:
    return {"received": True, "duplicate": duplicate}


class ShareView(View):
    userId: str
    amount: int


def share_view(share: ShareRow) -> dict[str, Any]:
    return {"userId": share.user_id, "amount": share.amount}


class SplitView(View):
    gigId: str
    mode: SplitMode
    total: int = Field(description="the fee that was split, in minor units")
    currency: str
    stale: bool = Field(description="the gig's fee changed since: split it again")
    shares: list[ShareView]
    updatedBy: str
    updatedAt: int


def split_view(split: SplitRow, *, stale: bool) -> dict[str, Any]:
    return {
        "gigId": split.gig_id,
        "mode": split.mode,
        "total": split.total,
        "currency": split.currency,
        "stale": stale,
        "shares": [share_view(s) for s in split.shares],
        "updatedBy": split.updated_by,
        "updatedAt": split.updated_at,
    }
