-- Accounts, tokens and biometric keys.
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    email           text NOT NULL,
    password_hash   text NOT NULL,
    name            text NOT NULL,
    role            text NOT NULL DEFAULT 'artist',
    public_key      text,
    public_key_at   bigint,
    last_seen_at    bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Each user's delivery sequence: taken in the same transaction as the inbox row it numbers.
CREATE TABLE user_seqs (
    user_id   uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL DEFAULT 0
);

-- Refresh tokens are stored only as SHA-256 digests; one family per login.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  bigint NOT NULL,
    used_at     bigint,
    revoked_at  bigint,
    created_at  bigint NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Ed25519 verify keys registered by devices for biometric login (the private key never leaves
-- the phone's secure enclave; the biometric unlocks it there).
CREATE TABLE biometric_keys (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_key  bytea NOT NULL UNIQUE,
    device_name text NOT NULL,
    created_at  bigint NOT NULL,
    last_used_at bigint
);
CREATE INDEX biometric_keys_user ON biometric_keys (user_id);
