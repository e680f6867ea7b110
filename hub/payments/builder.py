"""Builds payments over the gateways the settings configure and the gig access rules."""

from __future__ import annotations

from hub.bands.gigs import GigService
from hub.foundation import Foundation
from hub.payments.gateways import PaymentGateways
from hub.payments.service import PaymentService
from hub.payments.splits import SplitService
from hub.settings.sections import PaymentSettings
from storage.redis.leases import RedisLease
from storage.sql.bands import BandStore
from storage.sql.payments import PaymentStore
from storage.sql.payments_idempotency import IdempotencyStore
from storage.sql.payments_splits import SplitStore


def build_payments(
    settings: PaymentSettings,
    base: Foundation,
    *,
    gateways: PaymentGateways,
    gigs: GigService,
    bands: BandStore,
) -> PaymentService:
    return PaymentService(
        ledger=PaymentStore(base.pool),
        idempotency=IdempotencyStore(base.pool),
        splits=SplitService(splits=SplitStore(base.pool), gigs=gigs, clock=base.clock),
        gigs=gigs,
        bands=bands,
        gateways=gateways.configured(),
        fanout=base.fanout,
        clock=base.clock,
        gateway_timeout_seconds=settings.gateway_timeout_seconds,
        idempotency_stale_seconds=settings.idempotency_stale_seconds,
        idempotency_wait_seconds=settings.idempotency_wait_seconds,
        reconcile_lease=RedisLease(base.redis, base.keys.payment_reconcile_lease()),
        reconcile_seconds=settings.reconcile_seconds,
        idempotency_retention_seconds=settings.idempotency_retention_seconds,
    )
