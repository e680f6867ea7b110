"""What a provider answered, in the terms the worker acts on, and the TLS trust both use.

``delivered``: done. ``retry``: 429, 5xx or no answer (with the provider's ``Retry-After``
when it gave one). ``token_gone``: the token is dead and is forgotten. ``rejected``: the
provider refused this push for another reason (logged; retrying would not help).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Literal, Protocol

from hub.push.payloads import Push

Outcome = Literal["delivered", "retry", "token_gone", "rejected"]


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    status: int | None = None  # None: no HTTP answer at all
    reason: str = ""
    retry_after_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Where one push goes: the token (the VoIP one for a call) and its APNs environment."""

    token: str
    environment: str


class Provider(Protocol):
    name: str

    async def send(self, push: Push, target: Target) -> Answer: ...

    async def close(self) -> None: ...


def trust(ca_file: str | None) -> ssl.SSLContext:
    """The system's CAs, plus ``PUSH_CA_FILE`` when set (a local fake's self-signed one)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the date form is rare for these APIs and is ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def answer_for_status(status: int, reason: str, retry_after_header: str | None) -> Answer:
    """The answers both providers share: 2xx, 429 and 5xx."""
    if 200 <= status < 300:
        return Answer("delivered", status)
    if status == 429 or status >= 500:
        return Answer("retry", status, reason, retry_after(retry_after_header))
    return Answer("rejected", status, reason)
