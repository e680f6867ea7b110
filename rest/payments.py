"""``/api/payments``: pay for a gig with Stripe or PayPal, the caller's ledger, the gateways'
webhooks; and ``/api/gigs/:id/split``, how a gig's fee is split among the band.

Payment POSTs need an ``Idempotency-Key`` header: the service answers a retry with the first
answer. Webhooks carry no bearer token: their gateway's signature is their authentication,
checked by the service with the gateway's own library.
"""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import Field

from hub.errors import InvalidPayload
from hub.payments.idempotency import PaymentAnswer
from hub.payments.rules import MAX_PAYMENT_AMOUNT, MAX_SPLIT_SHARES, PaymentStatus, SplitMode
from hub.payments.service import PaymentRequest
from hub.payments.splits import Share
from hub.payments.views import (
    LedgerPage,
    MethodsView,
    PaymentCreated,
    PaymentRefunded,
    SplitView,
    WebhookAck,
)
from hub.protocol.cursors import MAX_CURSOR_CHARS
from hub.protocol.fields import Currency, Uuid
from rest.http import (
    Body,
    Query,
    current_user,
    json_response,
    path_uuid,
    read_form,
)
from rest.keys import SERVICES
from rest.spec import ApiRoutes

routes = ApiRoutes("payments")

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200  # with the user id in front, within Stripe's 255
_IDEMPOTENCY_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}$")

Amount = Annotated[int, Field(gt=0, le=MAX_PAYMENT_AMOUNT)]


class PayBody(Body):
    """Money in integer minor units (1250 = 12.50 EUR): a float is refused, not rounded.
    Without ``amount``, the gig's whole outstanding amount; with it, a part of it."""

    gigId: Uuid
    amount: Amount | None = None
    currency: Currency


class PayPalBody(PayBody):
    paymentMethodNonce: str = Field(min_length=1, max_length=4096)


class RefundBody(Body):
    """Without ``amount``, all that is left of the payment; with it, a part (minor units)."""

    amount: Amount | None = None


class LedgerQuery(Query):
    gigId: Uuid | None = None
    bandId: Uuid | None = None
    status: PaymentStatus | None = None
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, min_length=1, max_length=MAX_CURSOR_CHARS)


class ShareBody(Body):
    userId: Uuid
    amount: int = Field(ge=0, le=2**62)


class SplitBody(Body):
    """``{mode: "equal"}`` or ``{mode: "shares", shares: [{userId, amount}]}``."""

    mode: SplitMode
    shares: list[ShareBody] | None = Field(default=None, min_length=1, max_length=MAX_SPLIT_SHARES)


IDEMPOTENCY_DOC = {
    IDEMPOTENCY_HEADER: "required: a fresh random value per payment, the same on every retry "
    "(1-200 visible ASCII characters, per user). A retry gets the first answer, status included"
}


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise InvalidPayload(
            "send an Idempotency-Key header: a fresh random value per payment, the same on "
            "every retry of it",
            details={"field": IDEMPOTENCY_HEADER},
        )
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidPayload(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
            details={"field": IDEMPOTENCY_HEADER},
        )
    return key


def _answer(answer: PaymentAnswer) -> web.Response:
    return json_response(answer.body, status=answer.status)


@routes.get(
    "/api/payments/methods",
    summary="The payment methods this hub is configured for, with their client config",
    answer=MethodsView,
)
async def payment_methods(request: web.Request) -> web.Response:
    current_user(request)
    return json_response(await request.app[SERVICES].payments.methods())


@routes.get(
    "/api/payments/ledger",
    summary="The caller's payments, newest first",
    query=LedgerQuery,
    answer=LedgerPage,
)
async def payment_ledger(request: web.Request, query: LedgerQuery) -> web.Response:
    user_id = current_user(request)
    page = await request.app[SERVICES].payments.ledger(
        user_id,
        gig_id=query.gigId,
        band_id=query.bandId,
        status=query.status,
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(page)


@routes.post(
    "/api/payments/stripe",
    summary="Pay for a gig with Stripe: creates a PaymentIntent (band members)",
    description="Without amount: the gig's whole outstanding amount. 409 conflict "
    "(details.outstanding): more than is outstanding, no fee, paid or cancelled. 202 "
    "{payment, retryable: false}: Stripe may have made it without answering; do not pay "
    "again. 402 payment_failed, 502 gateway_error, 503 unavailable: the payment is failed and "
    "the key keeps that answer. 422 idempotency_mismatch: the key was used with another body; "
    "422 currency_not_supported.",
    body=PayBody,
    answer=PaymentCreated,
    status=201,
    headers=IDEMPOTENCY_DOC,
)
async def pay_with_stripe(request: web.Request, body: PayBody) -> web.Response:
    user_id = current_user(request)
    key = _idempotency_key(request)
    answer = await request.app[SERVICES].payments.pay(
        user_id, key, "stripe", PaymentRequest(body.gigId, body.amount, body.currency)
    )
    return _answer(answer)


@routes.post(
    "/api/payments/paypal",
    summary="Pay for a gig with PayPal: a Braintree sale with the app's nonce (band members)",
    description="Errors as for Stripe (202 when Braintree may have sold without answering); "
    "a sale Braintree accepted is succeeded at once.",
    body=PayPalBody,
    answer=PaymentCreated,
    status=201,
    headers=IDEMPOTENCY_DOC,
)
async def pay_with_paypal(request: web.Request, body: PayPalBody) -> web.Response:
    user_id = current_user(request)
    key = _idempotency_key(request)
    answer = await request.app[SERVICES].payments.pay(
        user_id,
        key,
        "paypal",
        PaymentRequest(body.gigId, body.amount, body.currency, body.paymentMethodNonce),
    )
    return _answer(answer)


@routes.post(
    "/api/payments/{payment_id}/refund",
    summary="Refund a payment in full or in part (owner, admin of the gig's band)",
    description="Through the gateway's own refund (Stripe Refund with the key; Braintree "
    "refund, or void before settlement). 409 conflict: more than is left to refund "
    "(details.refundable), or a payment not paid. A non-member gets 404, a plain member 403.",
    body=RefundBody,
    answer=PaymentRefunded,
    headers=IDEMPOTENCY_DOC,
)
async def refund_payment(request: web.Request, body: RefundBody) -> web.Response:
    user_id = current_user(request)
    payment_id = path_uuid(request, "payment_id")
    key = _idempotency_key(request)
    answer = await request.app[SERVICES].payments.refunds.refund(
        user_id, key, payment_id, body.amount
    )
    return _answer(answer)


@routes.post(
    "/api/payments/webhooks/stripe",
    summary="Stripe's webhook (verified with Stripe-Signature)",
    description="payment_intent.succeeded, payment_intent.payment_failed, charge.refunded "
    "move the payment once; a replayed event changes nothing; a bad signature is 400.",
    answer=WebhookAck,
    auth=False,
    headers={"Stripe-Signature": "t=<unix time>,v1=<HMAC-SHA256 of t.payload>"},
)
async def stripe_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    answer = await request.app[SERVICES].payments.apply_webhook(
        "stripe", payload, request.headers.get("Stripe-Signature")
    )
    return json_response(answer)


@routes.post(
    "/api/payments/webhooks/braintree",
    summary="Braintree's webhook: form fields bt_signature and bt_payload",
    description="transaction_settled, transaction_settlement_declined and dispute_lost move "
    "the payment once; a replayed notification changes nothing; a bad signature, or a body "
    "that is not such a form, is 400.",
    answer=WebhookAck,
    auth=False,
)
async def braintree_webhook(request: web.Request) -> web.Response:
    form = await read_form(request)
    signature, payload = form.get("bt_signature"), form.get("bt_payload")
    if not isinstance(signature, str) or not isinstance(payload, str):
        raise InvalidPayload("send the form fields bt_signature and bt_payload")
    answer = await request.app[SERVICES].payments.apply_webhook("paypal", payload, signature)
    return json_response(answer)


@routes.put(
    "/api/gigs/{gig_id}/split",
    summary="Split a gig's fee among the band's members (owner, admin)",
    description="equal: the remainder goes one minor unit each to the first members by user "
    "id. shares: distinct members, adding up to the fee exactly (else 409).",
    body=SplitBody,
    answer=SplitView,
)
async def set_gig_split(request: web.Request, body: SplitBody) -> web.Response:
    user_id = current_user(request)
    gig_id = path_uuid(request, "gig_id")
    if body.mode == "equal" and body.shares is not None:
        raise InvalidPayload("an equal split takes no shares", details={"field": "shares"})
    if body.mode == "shares" and body.shares is None:
        raise InvalidPayload("list the shares: [{userId, amount}]", details={"field": "shares"})
    shares = [Share(s.userId, s.amount) for s in body.shares or ()]
    split = await request.app[SERVICES].payments.splits.set_split(
        user_id, gig_id, body.mode, shares
    )
    return json_response(split)


@routes.get(
    "/api/gigs/{gig_id}/split",
    summary="How a gig's fee is split (members of its band); 404 before any split",
    answer=SplitView,
)
async def get_gig_split(request: web.Request) -> web.Response:
    user_id = current_user(request)
    split = await request.app[SERVICES].payments.splits.split(user_id, path_uuid(request, "gig_id"))
    return json_response(split)
