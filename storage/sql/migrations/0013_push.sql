-- Push: a device's provider token (it dies with the device), and per-conversation mutes.

-- One token per device (a PUT replaces it), one device per token: the same token registered
-- by another device (another account on the same phone) moves there. The VoIP (PushKit)
-- token is the iPhone's second token, for ringing calls only.
CREATE TABLE push_tokens (
    user_id     uuid NOT NULL,
    device_id   text NOT NULL,
    provider    text NOT NULL CHECK (provider IN ('apns', 'fcm')),
    token       text NOT NULL,
    voip_token  text,
    environment text NOT NULL DEFAULT 'production'
        CHECK (environment IN ('production', 'sandbox')),
    updated_at  bigint NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX push_tokens_token ON push_tokens (provider, token);
CREATE UNIQUE INDEX push_tokens_voip ON push_tokens (voip_token) WHERE voip_token IS NOT NULL;

-- A user's notification level for one conversation (the peer or the band): no row is
-- "all". muted_until null with level 'none' is "until changed".
CREATE TABLE conversation_notifications (
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL,
    level           text NOT NULL CHECK (level IN ('all', 'none')),
    muted_until     bigint,
    updated_at      bigint NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
