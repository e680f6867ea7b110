-- End-to-end-encrypted messages: the hub stores ciphertext and nonce only.

-- A direct conversation exists once either side has sent a message; it lets the two see
-- each other's presence and typing. user_low < user_high.
CREATE TABLE direct_conversations (
    user_low    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_high   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    PRIMARY KEY (user_low, user_high),
    CHECK (user_low < user_high)
);
CREATE INDEX direct_conversations_high ON direct_conversations (user_high);

-- One row per message: the client's id makes a resend idempotent.
CREATE TABLE messages (
    id             uuid PRIMARY KEY,
    sender_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sender_device  text NOT NULL,
    recipient_id   uuid REFERENCES users(id) ON DELETE CASCADE,
    band_id        uuid REFERENCES bands(id) ON DELETE CASCADE,
    ts             bigint NOT NULL,
    CHECK ((recipient_id IS NULL) <> (band_id IS NULL))
);

-- One copy per user who may read the message (every recipient, and the sender for their
-- other devices), numbered by that user's own gapless sequence. conversation_id is the peer
-- (direct) or the band; encrypted_for is the user whose public key, with the copy owner's
-- secret key, opens the box.
CREATE TABLE inbox (
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq              bigint NOT NULL,
    message_id       uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    sender_id        uuid NOT NULL,
    band_id          uuid,
    conversation_id  uuid NOT NULL,
    encrypted_for    uuid NOT NULL,
    ciphertext       bytea NOT NULL,
    nonce            bytea NOT NULL,
    ts               bigint NOT NULL,
    delivered_at     bigint,
    read_at          bigint,
    PRIMARY KEY (user_id, seq),
    UNIQUE (message_id, user_id)
);
CREATE INDEX inbox_conversation ON inbox (user_id, conversation_id, seq DESC);
CREATE INDEX inbox_unread ON inbox (user_id, conversation_id) WHERE read_at IS NULL;
