-- Payments: a ledger in integer minor units, the idempotency records that make a retried
-- POST charge at most once, the webhook events already applied (replay protection), and how
-- a gig's fee is split among the band's members.
--
-- The ledger is an audit record: it has no foreign keys to gigs, bands or users, so deleting
-- a gig or a band never deletes (or is blocked by) the money that moved for it. band_id is
-- the gig's band when the payment was made, kept so the ledger filters without a join.
CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    gig_id          uuid NOT NULL,
    band_id         uuid NOT NULL,
    user_id         uuid NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    method          text NOT NULL CHECK (method IN ('stripe', 'paypal')),
    status          text NOT NULL
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    transaction_id  text,
    failure_reason  text,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);
CREATE UNIQUE INDEX payments_transaction ON payments (method, transaction_id)
    WHERE transaction_id IS NOT NULL;
CREATE INDEX payments_user_created ON payments (user_id, created_at DESC, id DESC);
CREATE INDEX payments_gig ON payments (gig_id);

-- One row per (user, Idempotency-Key). While a request runs it is 'in_progress' and names its
-- owner; a crashed owner's record is retaken once locked_at is old enough. 'done' keeps the
-- first answer (status and JSON body, byte for byte) to replay to every retry.
CREATE TABLE payment_idempotency (
    user_id          uuid NOT NULL,
    key              text NOT NULL,
    request_hash     text NOT NULL,
    state            text NOT NULL CHECK (state IN ('in_progress', 'done')),
    owner_token      text NOT NULL,
    locked_at        bigint NOT NULL,
    payment_id       uuid,
    response_status  integer,
    response_body    text,
    created_at       bigint NOT NULL,
    PRIMARY KEY (user_id, key),
    CHECK (state = 'in_progress' OR (response_status IS NOT NULL AND response_body IS NOT NULL))
);

-- Every verified webhook event, so a replayed one changes nothing.
CREATE TABLE payment_webhook_events (
    gateway      text NOT NULL CHECK (gateway IN ('stripe', 'braintree')),
    event_id     text NOT NULL,
    kind         text NOT NULL,
    payment_id   uuid,
    received_at  bigint NOT NULL,
    PRIMARY KEY (gateway, event_id)
);

-- A gig's fee split: a plan, not money moved, so it goes with its gig.
CREATE TABLE gig_splits (
    gig_id      uuid PRIMARY KEY REFERENCES gigs(id) ON DELETE CASCADE,
    mode        text NOT NULL CHECK (mode IN ('equal', 'shares')),
    total       bigint NOT NULL CHECK (total >= 0),
    currency    char(3) NOT NULL,
    updated_by  uuid NOT NULL,
    updated_at  bigint NOT NULL
);

CREATE TABLE gig_split_shares (
    gig_id   uuid NOT NULL REFERENCES gig_splits(gig_id) ON DELETE CASCADE,
    user_id  uuid NOT NULL,
    amount   bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (gig_id, user_id)
);
