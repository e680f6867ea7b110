"""The payment gateways the settings configure, opened and closed as one resource.

Each gateway is an adapter behind the ``PaymentGateway`` port (``hub.payments.ports``):
``gateways_stripe`` and ``gateways_braintree`` over the official libraries. The payment
service sees only the port, so one pay path serves every method.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from hub.payments.gateways_braintree import BraintreePayments
from hub.payments.gateways_stripe import StripePayments
from hub.payments.ports import PaymentGateway
from hub.settings.sections import PaymentSettings

log = logging.getLogger(__name__)


class PaymentGateways:
    """``context`` goes in the application's ``cleanup_ctx`` ahead of the services using the
    gateways; ``configured`` is what it opened, in the order the app offers the methods."""

    def __init__(self, settings: PaymentSettings) -> None:
        self._settings = settings
        self._opened: list[PaymentGateway] = []

    def configured(self) -> list[PaymentGateway]:
        return list(self._opened)

    async def context(self, _app: object) -> AsyncIterator[None]:
        timeout = self._settings.gateway_timeout_seconds
        try:
            if self._settings.stripe is not None:
                self._opened.append(StripePayments(self._settings.stripe, timeout_seconds=timeout))
            if self._settings.braintree is not None:
                self._opened.append(
                    BraintreePayments(self._settings.braintree, timeout_seconds=timeout)
                )
            yield
        finally:
            for gateway in self._opened:
                try:
                    await gateway.close()
                except Exception:
                    # Closing is the last thing the gateway does; the others still close.
                    log.warning("closing the %s gateway failed", gateway.name, exc_info=True)
            self._opened.clear()
