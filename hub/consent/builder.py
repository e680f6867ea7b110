"""Builds the consent service (message requests and blocks)."""

from __future__ import annotations

from hub.consent.service import ConsentService, EndCalls
from hub.foundation import Foundation
from storage.sql.consent import ConsentStore


def build_consent(base: Foundation, *, end_calls: EndCalls) -> ConsentService:
    return ConsentService(
        store=ConsentStore(base.pool), fanout=base.fanout, clock=base.clock, end_calls=end_calls
    )
