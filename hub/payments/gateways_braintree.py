"""PayPal through Braintree behind the ``PaymentGateway`` port, with the official ``braintree``
library.

A charge is a ``transaction.sale`` with the app's nonce, submitted for settlement and with
our ledger id as its order id: Braintree's answer is final at once (succeeded or failed);
webhooks only correct it later. Braintree has no idempotency key, so a resumed charge looks
its sale up by order id before selling.

The library is synchronous (``requests``): each call runs in a worker thread of Braintree's
own small pool, so a slow Braintree cannot starve the default executor (bcrypt's). It is
pointed elsewhere by configuration only (``BRAINTREE_ENVIRONMENT``), which is how the tests
fake it. Library errors become the hub's three gateway answers; what is logged names the
error class, never a key.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import braintree
import braintree.exceptions.http
from braintree.exceptions.braintree_error import BraintreeError

from hub.errors import Conflict, GatewayRefused, GatewayUnavailable, InvalidPayload, PaymentFailed
from hub.payments.ports import (
    ChargeRequest,
    ChargeResult,
    ClientConfig,
    GatewayEvent,
    OutcomeUnknown,
)
from hub.payments.rules import GatewayFact, GatewayName, PaymentMethod
from hub.settings import BraintreeConfig
from storage.sql.payments import PaymentRow

log = logging.getLogger(__name__)

# ISO 4217 currencies whose minor unit is not a hundredth. Braintree takes decimal amounts,
# so minor units are converted with the currency's own exponent.
ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)
THREE_DECIMAL_CURRENCIES = frozenset("BHD IQD JOD KWD LYD OMR TND".split())

BRAINTREE_SOLD = frozenset({"submitted_for_settlement", "settling", "settled"})
BRAINTREE_UNDECIDED = frozenset({"authorizing", "authorized", "settlement_pending"})
BRAINTREE_THREADS = 8  # concurrent Braintree calls per node; more wait their turn
BRAINTREE_NOTIFICATION_FACTS: dict[str, GatewayFact] = {
    "transaction_settled": "succeeded",
    "transaction_settlement_declined": "settlement_declined",
    "dispute_opened": "disputed",
    "dispute_won": "dispute_won",
    "dispute_lost": "refunded",
}
BRAINTREE_REFUNDABLE = frozenset({"settled", "settling"})
BRAINTREE_VOIDABLE = frozenset({"submitted_for_settlement", "authorized", "settlement_pending"})


def minor_units_to_decimal(amount: int, currency: str) -> str:
    """``1250, "EUR"`` → ``"12.50"``; ``1250, "JPY"`` → ``"1250"``."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(amount)
    digits = 3 if currency in THREE_DECIMAL_CURRENCIES else 2
    return str(Decimal(amount).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


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
        self._accounts = dict(config.merchant_accounts)

    @property
    def currencies(self) -> tuple[str, ...]:
        """Those with a merchant account: Braintree charges in the account's currency."""
        return tuple(sorted(self._accounts))

    @property
    def method(self) -> PaymentMethod:
        return "paypal"

    @property
    def name(self) -> GatewayName:
        return "braintree"

    async def client_config(self) -> ClientConfig:
        token = await self._call(self._gateway.client_token.generate)
        return ClientConfig(client_token=str(token))

    async def charge(self, charge: ChargeRequest, *, resumed: bool) -> ChargeResult:
        """The sale for this ledger row: the one a resumed request's dead owner made, if
        Braintree has it, else a new one."""
        sale = await self._find_sale(charge) if resumed else None
        return sale or await self._sell(charge)

    async def _sell(self, charge: ChargeRequest) -> ChargeResult:
        account = self._accounts.get(charge.currency)
        if account is None:  # the service refuses these before any row: never reached
            raise GatewayRefused(
                f"no Braintree merchant account for {charge.currency}",
                details={"gateway": "paypal"},
            )
        params = {
            "amount": minor_units_to_decimal(charge.amount, charge.currency),
            "merchant_account_id": account,
            "payment_method_nonce": charge.nonce,
            "order_id": charge.payment_id,
            "options": {"submit_for_settlement": True},
        }
        result = await self._call(self._gateway.transaction.sale, params, charging=True)
        if result.is_success:
            await self._check_sale(result.transaction, charge.amount, charge.currency)
            return _sale_result(result.transaction)
        transaction = getattr(result, "transaction", None)
        details: dict[str, Any] = {"gateway": "paypal", "reason": str(result.message)}
        if transaction is not None:
            details["transactionId"] = str(transaction.id)
            details["reason"] = str(
                getattr(transaction, "processor_response_text", None) or result.message
            )
        raise PaymentFailed("PayPal declined the payment", details=details)

    async def _find_sale(self, charge: ChargeRequest) -> ChargeResult | None:
        return await self._sale_of(charge.payment_id, charge.amount, charge.currency)

    async def refund(self, payment: PaymentRow, amount: int, idempotency_key: str) -> None:
        """``transaction.refund`` of a settled sale, or ``void`` of one not settled yet (which
        can only be undone in full). Braintree has no idempotency key: it refuses to refund
        more than was settled, which is what keeps a retry from refunding twice."""
        if payment.transaction_id is None:
            raise GatewayRefused("the payment has no Braintree sale", details={"gateway": "paypal"})
        transaction = await self._call(self._gateway.transaction.find, payment.transaction_id)
        status = str(transaction.status)
        if status in BRAINTREE_REFUNDABLE:
            decimal = minor_units_to_decimal(amount, payment.currency)
            result = await self._call(
                self._gateway.transaction.refund, payment.transaction_id, decimal
            )
        elif status in BRAINTREE_VOIDABLE and amount == payment.amount - payment.refunded_amount:
            result = await self._call(self._gateway.transaction.void, payment.transaction_id)
        elif status in BRAINTREE_VOIDABLE:
            raise Conflict(
                "PayPal can refund a sale that has not settled only in full",
                details={"refundable": payment.amount - payment.refunded_amount},
            )
        else:
            raise GatewayRefused(
                f"PayPal cannot refund a {status} sale", details={"gateway": "paypal"}
            )
        if not result.is_success:
            raise GatewayRefused(
                "PayPal (Braintree) refused the refund",
                details={"gateway": "paypal", "reason": str(result.message)},
            )

    async def client_secret(self, transaction_id: str) -> str | None:
        return None  # a sale is final at once: nothing to confirm in the app

    async def look_up(self, payment: PaymentRow) -> ChargeResult | None:
        """The sale with the payment's id as its order id: None only when Braintree's search
        says there is none (the sale was never created)."""
        return await self._sale_of(payment.id, payment.amount, payment.currency)

    async def _sale_of(self, order_id: str, amount: int, currency: str) -> ChargeResult | None:
        search = braintree.TransactionSearch.order_id == order_id
        found = await self._call(self._gateway.transaction.search, search)
        if not found.ids:
            return None
        transaction = await self._call(self._gateway.transaction.find, found.ids[0])
        await self._check_sale(transaction, amount, currency)
        return _sale_result(transaction)

    async def _check_sale(self, transaction: Any, asked: int, asked_currency: str) -> None:
        """The sale is in the currency and for the amount asked, or it is voided and the
        payment fails with ``gateway_error``: a sale in the merchant account's currency
        instead of the gig's would take the wrong money."""
        expected = Decimal(minor_units_to_decimal(asked, asked_currency))
        currency = str(getattr(transaction, "currency_iso_code", "") or "")
        amount = Decimal(str(getattr(transaction, "amount", "") or "NaN"))
        if currency == asked_currency and amount == expected:
            return
        transaction_id = str(transaction.id)
        log.warning(
            "Braintree sold %s %s for a payment of %s %s: voiding it",
            amount,
            currency,
            expected,
            asked_currency,
        )
        try:
            await self._call(self._gateway.transaction.void, transaction_id)
        except (GatewayRefused, GatewayUnavailable):
            log.error("Braintree sale %s could not be voided: void it by hand", transaction_id)
        raise GatewayRefused(
            "PayPal (Braintree) charged another currency or amount than asked; the sale was voided",
            details={
                "gateway": "paypal",
                "transactionId": transaction_id,
                "reason": f"charged {amount} {currency}, asked {expected} {asked_currency}",
            },
        )

    def verify_webhook(self, payload: str | bytes, signature: str | None) -> GatewayEvent:
        if signature is None:
            raise InvalidPayload("bt_signature does not match bt_payload")
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        try:
            notification = self._gateway.webhook_notification.parse(signature, text)
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
        digest = hashlib.sha256(text.strip().encode("ascii", "replace")).hexdigest()
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

    async def _call(self, operation: Any, *args: Any, charging: bool = False) -> Any:
        """One library call in a worker thread, its failures as the hub's gateway errors. A
        ``charging`` call that may have reached Braintree without an answer (a read timeout,
        a reset connection, a 5xx) raises ``OutcomeUnknown``; one that surely did not (a
        refused connection, a connect timeout, 429) is ``GatewayUnavailable``."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._threads, functools.partial(operation, *args))
        except BRAINTREE_NO_ANSWER as exc:
            log.warning("Braintree did not answer: %s", type(exc).__name__)
            if charging and not braintree_never_sent(exc):
                raise OutcomeUnknown(type(exc).__name__) from None
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


BRAINTREE_NO_ANSWER = (
    braintree.exceptions.ServiceUnavailableError,
    braintree.exceptions.ServerError,
    braintree.exceptions.GatewayTimeoutError,
    braintree.exceptions.RequestTimeoutError,
    braintree.exceptions.TooManyRequestsError,
    braintree.exceptions.http.ConnectionError,
    braintree.exceptions.http.TimeoutError,
)


def braintree_never_sent(exc: BaseException) -> bool:
    """Whether a failed call surely never reached Braintree: the connection was refused or
    never made (connect timeout), or Braintree turned it away unprocessed (429)."""
    if isinstance(
        exc,
        braintree.exceptions.TooManyRequestsError
        | braintree.exceptions.http.timeout_error.ConnectTimeoutError,
    ):
        return True
    if isinstance(exc, braintree.exceptions.http.ConnectionError):
        text = repr(exc.args)
        return "NewConnectionError" in text or "Connection refused" in text
    return False


def _sale_result(transaction: Any) -> ChargeResult:
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
    return ChargeResult(transaction_id, outcome)
