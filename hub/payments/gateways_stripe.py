"""Stripe behind the ``PaymentGateway`` port, through the official ``stripe`` library.

A charge creates a PaymentIntent with our idempotency key and answers its client secret:
the app confirms the payment, and Stripe's webhook settles the ledger row. The library runs
on its own asyncio HTTP client (``stripe.AIOHTTPClient``), so it never blocks the event
loop; it is pointed elsewhere by configuration only (``STRIPE_API_BASE``), which is how the
tests fake it.

Library errors become the hub's three gateway answers; what is logged names the error class
and Stripe's request id, never a key, secret or client secret.
"""

from __future__ import annotations

import logging

import stripe

from hub.errors import GatewayRefused, GatewayUnavailable, InvalidPayload, PaymentFailed
from hub.payments.ports import (
    ChargeRequest,
    ChargeResult,
    ClientConfig,
    GatewayEvent,
    OutcomeUnknown,
)
from hub.payments.rules import GatewayFact, GatewayName, PaymentMethod
from hub.settings import StripeConfig
from storage.sql.payments import PaymentRow

log = logging.getLogger(__name__)

STRIPE_EVENT_FACTS: dict[str, GatewayFact] = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "charge.refunded": "refunded",
    "charge.dispute.created": "disputed",
}
# How a closed dispute ends: won gives the money back to the band, lost takes it for good.
DISPUTE_OUTCOMES: dict[str, GatewayFact] = {"won": "dispute_won", "lost": "refunded"}


# The currencies Stripe charges in (its presentment currencies, as ISO 4217 codes).
STRIPE_CURRENCIES = tuple(
    sorted(
        """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
        BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP
        GBP GEL GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR
        KMF KRW KWD KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN
        MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
        SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX
        USD UYU UZS VND VUV WST XAF XCD XOF XPF YER ZAR ZMW""".split()
    )
)


class StripePayments:
    """PaymentIntents through ``stripe.StripeClient`` on aiohttp, with our idempotency key."""

    def __init__(self, config: StripeConfig, *, timeout_seconds: int) -> None:
        self._http = stripe.AIOHTTPClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            config.secret_key,
            base_addresses={"api": config.api_base},
            http_client=self._http,
            max_network_retries=1,  # the same idempotency key: a retry never charges twice
        )
        self._webhook_secret = config.webhook_secret
        self._publishable_key = config.publishable_key

    @property
    def method(self) -> PaymentMethod:
        return "stripe"

    @property
    def name(self) -> GatewayName:
        return "stripe"

    @property
    def currencies(self) -> tuple[str, ...]:
        return STRIPE_CURRENCIES

    async def client_config(self) -> ClientConfig:
        return ClientConfig(publishable_key=self._publishable_key or None)

    async def charge(self, charge: ChargeRequest, *, resumed: bool) -> ChargeResult:
        """A PaymentIntent, ``pending`` until the app confirms it. A resumed charge needs no
        care: Stripe answers the same idempotency key with the same PaymentIntent."""
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": charge.amount,
                    "currency": charge.currency.lower(),
                    "automatic_payment_methods": {"enabled": True},
                    "metadata": {
                        "paymentId": charge.payment_id,
                        "gigId": charge.gig_id,
                        "userId": charge.user_id,
                    },
                },
                options={"idempotency_key": charge.idempotency_key},
            )
        except stripe.CardError as exc:
            raise PaymentFailed(
                exc.user_message or "the card was declined",
                details={"gateway": "stripe", "reason": exc.code or "card_declined"},
            ) from None
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            _log_stripe("did not answer", exc)
            if not stripe_never_sent(exc):
                raise OutcomeUnknown(type(exc).__name__) from None
            raise _unavailable() from None
        except stripe.RateLimitError as exc:
            _log_stripe("did not answer", exc)
            raise _unavailable() from None
        except stripe.StripeError as exc:
            _log_stripe("refused the request", exc)
            raise GatewayRefused(
                "Stripe refused the payment request", details={"gateway": "stripe"}
            ) from None
        if not intent.client_secret:
            raise GatewayRefused(
                "Stripe answered without a client secret", details={"gateway": "stripe"}
            )
        return ChargeResult(intent.id, "pending", client_secret=intent.client_secret)

    async def refund(self, payment: PaymentRow, amount: int, idempotency_key: str) -> None:
        """A Refund of the PaymentIntent's charge, with the key: a retry refunds once."""
        try:
            await self._client.v1.refunds.create_async(
                params={
                    "payment_intent": payment.transaction_id or "",
                    "amount": amount,
                    "metadata": {"paymentId": payment.id},
                },
                options={"idempotency_key": idempotency_key},
            )
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            _log_stripe("did not answer a refund", exc)
            raise GatewayUnavailable(
                "Stripe did not answer the refund; retry with the same Idempotency-Key",
                details={"gateway": "stripe"},
            ) from None
        except stripe.StripeError as exc:
            _log_stripe("refused a refund", exc)
            raise GatewayRefused(
                "Stripe refused the refund", details={"gateway": "stripe", "reason": exc.code}
            ) from None

    async def client_secret(self, transaction_id: str) -> str | None:
        """The PaymentIntent's client secret, asked again (the hub keeps none)."""
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(transaction_id)
        except stripe.StripeError as exc:
            _log_stripe("did not give a client secret", exc)
            raise _unavailable() from None
        return intent.client_secret or None

    async def look_up(self, payment: PaymentRow) -> ChargeResult | None:
        """The PaymentIntent by its id, or by ``metadata.paymentId`` when its id was never
        heard: None only when Stripe's search finds none."""
        try:
            if payment.transaction_id is not None:
                intent = await self._client.v1.payment_intents.retrieve_async(
                    payment.transaction_id
                )
            else:
                found = await self._client.v1.payment_intents.search_async(
                    params={"query": f"metadata['paymentId']:'{payment.id}'", "limit": 1}
                )
                if not found.data:
                    return None
                intent = found.data[0]
        except stripe.StripeError as exc:
            _log_stripe("did not answer a look-up", exc)
            raise _unavailable() from None
        if intent.status == "succeeded":
            return ChargeResult(intent.id, "succeeded", client_secret=intent.client_secret)
        if intent.status == "canceled":
            raise PaymentFailed(
                "the PaymentIntent was canceled",
                details={"gateway": "stripe", "reason": "canceled", "transactionId": intent.id},
            )
        return ChargeResult(intent.id, "pending", client_secret=intent.client_secret)

    def verify_webhook(self, payload: str | bytes, signature: str | None) -> GatewayEvent:
        try:
            event = self._client.construct_event(payload, signature, self._webhook_secret)
        except stripe.SignatureVerificationError:
            raise InvalidPayload("the Stripe-Signature does not match the payload") from None
        except ValueError:
            raise InvalidPayload("the payload is not a Stripe event") from None
        body = event.to_dict()
        kind = str(body.get("type", ""))
        subject = body.get("data", {}).get("object", {})
        if not isinstance(subject, dict):
            subject = {}
        metadata = subject.get("metadata") or {}
        payment_id = metadata.get("paymentId") if isinstance(metadata, dict) else None
        fact = STRIPE_EVENT_FACTS.get(kind)
        refunded_total: int | None = None
        if kind.startswith("charge."):
            transaction_id = subject.get("payment_intent")
            if kind == "charge.refunded":
                # Full or partial, by the charge's total refunded: the ledger takes the larger.
                fact = None
                total = subject.get("amount_refunded")
                refunded_total = total if isinstance(total, int) and total > 0 else None
            if kind == "charge.dispute.closed":
                fact = DISPUTE_OUTCOMES.get(str(subject.get("status")))
        else:
            transaction_id = subject.get("id") if kind.startswith("payment_intent.") else None
        reason = None
        if fact == "failed":
            last_error = subject.get("last_payment_error") or {}
            if isinstance(last_error, dict):
                reason = last_error.get("message") or last_error.get("code")
        return GatewayEvent(
            event_id=str(body.get("id", "")),
            kind=kind,
            fact=fact,
            payment_id=payment_id if isinstance(payment_id, str) else None,
            transaction_id=transaction_id if isinstance(transaction_id, str) else None,
            reason=str(reason) if reason else None,
            refunded_total=refunded_total,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def _unavailable() -> GatewayUnavailable:
    return GatewayUnavailable(
        "Stripe did not answer; the payment was not made. Try again with a new Idempotency-Key.",
        details={"gateway": "stripe"},
    )


def stripe_never_sent(exc: stripe.StripeError) -> bool:
    """Whether a failed call surely never reached Stripe: the connection was never made."""
    if not isinstance(exc, stripe.APIConnectionError):
        return False
    text = str(exc)
    return "Cannot connect to host" in text or "Connection refused" in text


def _log_stripe(what: str, exc: stripe.StripeError) -> None:
    log.warning(
        "Stripe %s: %s (status %s, code %s, request %s)",
        what,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )
