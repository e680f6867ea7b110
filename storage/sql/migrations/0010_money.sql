-- Money that adds up (issue 15): refunds and disputes in the ledger, payments whose outcome
-- the gateway has not told us yet (reconciled later), and idempotency records swept by age.
--
-- refunded_amount: what went back to the payer (route or webhook), never more than paid.
-- uncertain_since: set when a gateway call may have reached the gateway without an answer
-- (timeout, reset, 5xx); the reconciler asks the gateway about every such row and clears it.
ALTER TABLE payments ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN uncertain_since bigint;
ALTER TABLE payments ADD CONSTRAINT payments_refund_within_amount
    CHECK (refunded_amount >= 0 AND refunded_amount <= amount);
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded', 'partially_refunded',
                      'disputed'));
CREATE INDEX payments_uncertain ON payments (uncertain_since) WHERE uncertain_since IS NOT NULL;
CREATE INDEX payment_idempotency_created ON payment_idempotency (created_at);
