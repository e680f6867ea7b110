"""The hub's one error family: a stable ``code`` for clients, an HTTP status for REST.

Services raise these; only ``handlers.dispatch.EventDispatcher`` and the REST error middleware turn
them into acks and responses. Anything else that escapes is ``internal`` and its text is
never sent to a client.
"""

from __future__ import annotations

from typing import Any, ClassVar

from storage.failures import StorageUnavailable


class HubError(Exception):
    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        if self.retryable:
            error["retryable"] = True
        return error


class InvalidPayload(HubError):
    code = "invalid_payload"
    http_status = 400


class TooLarge(HubError):
    code = "too_large"
    http_status = 413


class NotAuthenticated(HubError):
    code = "unauthorized"
    http_status = 401


class SessionRevoked(NotAuthenticated):
    """The token's session (its device) was revoked: log in again."""

    code = "session_revoked"


class ReauthRequired(NotAuthenticated):
    """The action hands over the account: prove the password or a biometric key again."""

    code = "reauth_required"


class Forbidden(HubError):
    code = "forbidden"
    http_status = 403


class NotFound(HubError):
    code = "not_found"
    http_status = 404


class Conflict(HubError):
    code = "conflict"
    http_status = 409


class AttachmentUnusable(HubError):
    """An attachment of a send cannot be bound to it: ``details.reason`` says why
    (``another_conversation``, ``already_bound``, ``not_uploaded``)."""

    code = "attachment_unusable"
    http_status = 409

    @classmethod
    def because(cls, attachment_id: str, reason: str) -> AttachmentUnusable:
        return cls(
            f"attachment {attachment_id} cannot be sent with this message ({reason})",
            details={"attachment": attachment_id, "reason": reason},
        )


class RateLimited(HubError):
    code = "rate_limited"
    http_status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, details={"retryAfter": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


class UpstreamUnavailable(HubError):
    """PostgreSQL, Redis or a gateway did not answer: nothing was stored, try again."""

    code = "unavailable"
    http_status = 503
    retryable = True


class NotConfigured(HubError):
    """The hub has no credentials for this provider (push): asking again will not help
    until an operator configures it."""

    code = "not_configured"
    http_status = 503


class IdempotencyMismatch(HubError):
    """The Idempotency-Key was first used with another request body."""

    code = "idempotency_mismatch"
    http_status = 422


class IdempotencyInProgress(Conflict):
    """A request with the same Idempotency-Key is still running: ask again shortly."""

    retryable = True


class PaymentFailed(HubError):
    """The gateway answered and refused the payment (declined, invalid payment method)."""

    code = "payment_failed"
    http_status = 402


class CurrencyNotSupported(HubError):
    """The method cannot take the gig's currency (no Braintree merchant account for it)."""

    code = "currency_not_supported"
    http_status = 422


class GatewayRefused(HubError):
    """The gateway refused the hub's own request (bad credentials, invalid request)."""

    code = "gateway_error"
    http_status = 502


class GatewayUnavailable(UpstreamUnavailable):
    """A payment gateway did not answer or is not configured. Once a payment attempt was made,
    its Idempotency-Key keeps this answer: a new attempt needs a new key."""

    retryable = False


def upstream_failures() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a server the hub depends on did not answer: nothing was stored,
    and the client should retry (answered as ``unavailable``, never as a false ack). Stores
    turn their drivers' failures into ``StorageUnavailable`` (``storage/failures.py``)."""
    return (StorageUnavailable, ConnectionError, TimeoutError)
