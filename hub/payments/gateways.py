"""The payment gateways behind ``hub.payments``' protocols, through the official libraries.

Stripe runs on its own asyncio HTTP client (``stripe.AIOHTTPClient``), so it never blocks the
event loop. Braintree's library is synchronous (``requests``): each call runs in a worker
thread of Braintree's own small pool, so a slow Braintree cannot starve the default executor
(bcrypt's). Both are pointed elsewhere by configuration only
(``STRIPE_API_BASE``, ``BRAINTREE_ENVIRONMENT``), which is how the tests fake them.

Library errors become the hub's three gateway answers (see ``hub.payments``); what is logged
names the error class and the gateway's request id, never a key, secret or client secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import braintree
import braintree.exceptions.http
import stripe
from braintree.exceptions.braintree_error import BraintreeError

from hub.errors import GatewayRefused, GatewayUnavailable, InvalidPayload, PaymentFailed
from hub.payments.service import ChargeRequest, GatewayEvent, GatewayFact, IntentCreated, SaleResult
from hub.settings import BraintreeConfig, StripeConfig
from hub.settings.sections import PaymentSettings

log = logging.getLogger(__name__)

# ISO 4217 currencies whose minor unit is not a hundredth. Braintree takes decimal amounts,
# so minor units are converted with the currency's own exponent.
ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)
THREE_DECIMAL_CURRENCIES = frozenset("BHD IQD JOD KWD LYD OMR TND".split())

STRIPE_EVENT_FACTS: dict[str, GatewayFact] = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "charge.refunded": "refunded",
}
BRAINTREE_SOLD = frozenset({"submitted_for_settlement", "settling", "settled"})
BRAINTREE_UNDECIDED = frozenset({"authorizing", "authorized", "settlement_pending"})
BRAINTREE_THREADS = 8  # concurrent Braintree calls per node; more wait their turn
BRAINTREE_NOTIFICATION_FACTS: dict[str, GatewayFact] = {
    "transaction_settled": "succeeded",
    "transaction_settlement_declined": "settlement_declined",
    "dispute_lost": "refunded",
}


def minor_units_to_decimal(amount: int, currency: str) -> str:
    """``1250, "EUR"`` → ``"12.50"``; ``1250, "JPY"`` → ``"1250"``."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(amount)
    digits = 3 if currency in THREE_DECIMAL_CURRENCIES else 2
    return str(Decimal(amount).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


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
    def publishable_key(self) -> str:
        return self._publishable_key

    async def create_intent(self, charge: ChargeRequest) -> IntentCreated:
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
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            _log_stripe("did not answer", exc)
            raise GatewayUnavailable(
                "Stripe did not answer; the payment was not made. Try again with a new "
                "Idempotency-Key.",
                details={"gateway": "stripe"},
            ) from None
        except stripe.StripeError as exc:
            _log_stripe("refused the request", exc)
            raise GatewayRefused(
                "Stripe refused the payment request", details={"gateway": "stripe"}
            ) from None
        if not intent.client_secret:
            raise GatewayRefused(
                "Stripe answered without a client secret", details={"gateway": "stripe"}
            )
        return IntentCreated(intent.id, intent.client_secret)

    def verify_event(self, payload: bytes, signature: str | None) -> GatewayEvent:
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
        if kind.startswith("charge."):
            transaction_id = subject.get("payment_intent")
            if kind == "charge.refunded" and not subject.get("refunded"):
                fact = None  # a partial refund: the payment stands
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
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def _log_stripe(what: str, exc: stripe.StripeError) -> None:
    log.warning(
        "Stripe %s: %s (status %s, code %s, request %s)",
        what,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )


def braintree_environment(value: str) -> braintree.Environment:
    """``sandbox``/``production``, or an ``http://host:port`` base URL (a local fake)."""
    if value in ("sandbox", "production"):
        return braintree.Environment.parse_environment(value)
    parts = urlsplit(value)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not a Braintree environment: {value!r}")
    port = str(parts.port or 80)
    return braintree.Environment("custom", parts.hostname, port, "", False, None)


class BraintreePayments:
    """PayPal through Braintree: ``transaction.sale`` with the app's nonce, submitted for
    settlement, our ledger id as its order id."""

    def __init__(self, config: BraintreeConfig, *, timeout_seconds: int) -> None:
        self._gateway = braintree.BraintreeGateway(
            braintree.Configuration(
                environment=braintree_environment(config.environment),
                merchant_id=config.merchant_id,
                public_key=config.public_key,
                private_key=config.private_key,
                timeout=timeout_seconds,
                wrap_http_exceptions=True,
            )
        )
        self._threads = ThreadPoolExecutor(BRAINTREE_THREADS, thread_name_prefix="braintree")

    async def sale(self, charge: ChargeRequest, nonce: str) -> SaleResult:
        params = {
            "amount": minor_units_to_decimal(charge.amount, charge.currency),
            "payment_method_nonce": nonce,
            "order_id": charge.payment_id,
            "options": {"submit_for_settlement": True},
        }
        result = await self._call(self._gateway.transaction.sale, params)
        if result.is_success:
            return _sale_result(result.transaction)
        transaction = getattr(result, "transaction", None)
        details: dict[str, Any] = {"gateway": "paypal", "reason": str(result.message)}
        if transaction is not None:
            details["transactionId"] = str(transaction.id)
            details["reason"] = str(
                getattr(transaction, "processor_response_text", None) or result.message
            )
        raise PaymentFailed("PayPal declined the payment", details=details)

    async def find_sale(self, payment_id: str) -> SaleResult | None:
        search = braintree.TransactionSearch.order_id == payment_id
        found = await self._call(self._gateway.transaction.search, search)
        if not found.ids:
            return None
        transaction = await self._call(self._gateway.transaction.find, found.ids[0])
        return _sale_result(transaction)

    async def client_token(self) -> str:
        token = await self._call(self._gateway.client_token.generate)
        return str(token)

    def verify_notification(self, signature: str, payload: str) -> GatewayEvent:
        try:
            notification = self._gateway.webhook_notification.parse(signature, payload)
        except braintree.exceptions.InvalidSignatureError:
            raise InvalidPayload("bt_signature does not match bt_payload") from None
        except Exception:
            # Signed but unreadable, or not base64 XML at all: refused the same way.
            raise InvalidPayload("bt_payload is not a Braintree notification") from None
        kind = str(notification.kind)
        transaction_id: str | None = None
        order_id: str | None = None
        transaction = getattr(notification, "transaction", None)
        if transaction is not None:
            transaction_id = str(transaction.id)
            order = getattr(transaction, "order_id", None)
            order_id = str(order) if order else None
        dispute = getattr(notification, "dispute", None)
        if dispute is not None:
            details = getattr(dispute, "transaction_details", None)
            if details is not None:
                transaction_id = str(details.id)
        # A notification has no id of its own: the signed payload names it.
        digest = hashlib.sha256(payload.strip().encode("ascii", "replace")).hexdigest()
        return GatewayEvent(
            event_id=digest,
            kind=kind,
            fact=BRAINTREE_NOTIFICATION_FACTS.get(kind),
            payment_id=order_id,
            transaction_id=transaction_id,
            reason="settlement declined" if kind == "transaction_settlement_declined" else None,
        )

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _call(self, operation: Any, *args: Any) -> Any:
        """One library call in a worker thread, its failures as the hub's gateway errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._threads, functools.partial(operation, *args))
        except (
            braintree.exceptions.ServiceUnavailableError,
            braintree.exceptions.ServerError,
            braintree.exceptions.GatewayTimeoutError,
            braintree.exceptions.RequestTimeoutError,
            braintree.exceptions.TooManyRequestsError,
            braintree.exceptions.http.ConnectionError,
            braintree.exceptions.http.TimeoutError,
        ) as exc:
            log.warning("Braintree did not answer: %s", type(exc).__name__)
            raise GatewayUnavailable(
                "PayPal (Braintree) did not answer; the payment was not made. Try again with "
                "a new Idempotency-Key.",
                details={"gateway": "paypal"},
            ) from None
        except BraintreeError as exc:
            log.warning("Braintree refused the request: %s", type(exc).__name__)
            raise GatewayRefused(
                "PayPal (Braintree) refused the payment request", details={"gateway": "paypal"}
            ) from None


def _sale_result(transaction: Any) -> SaleResult:
    status = str(transaction.status)
    transaction_id = str(transaction.id)
    outcome: Literal["succeeded", "pending"]
    if status in BRAINTREE_SOLD:
        outcome = "succeeded"
    elif status in BRAINTREE_UNDECIDED:
        outcome = "pending"
    else:
        raise PaymentFailed(
            "PayPal declined the payment",
            details={"gateway": "paypal", "reason": status, "transactionId": transaction_id},
        )
    return SaleResult(transaction_id, outcome)


class PaymentGateways:
    """The gateways the settings configure (None when not), opened and closed as one pair:
    ``context`` goes in the application's ``cleanup_ctx`` ahead of the services using it."""

    def __init__(self, settings: PaymentSettings) -> None:
        self._settings = settings
        self.stripe: StripePayments | None = None
        self.braintree: BraintreePayments | None = None

    async def context(self, _app: object) -> AsyncIterator[None]:
        timeout = self._settings.gateway_timeout_seconds
        try:
            if self._settings.stripe is not None:
                self.stripe = StripePayments(self._settings.stripe, timeout_seconds=timeout)
            if self._settings.braintree is not None:
                self.braintree = BraintreePayments(
                    self._settings.braintree, timeout_seconds=timeout
                )
            yield
        finally:
            for gateway in (self.stripe, self.braintree):
                if gateway is not None:
                    with contextlib.suppress(Exception):
                        await gateway.close()
