-- Encrypted attachments: the hub keeps only who uploaded how many bytes for which
-- conversation, and which message they are bound to; the bytes (ciphertext the hub cannot
-- read) are in the blob store under the attachment's id.
CREATE TABLE attachments (
    id               uuid PRIMARY KEY,
    uploader_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The conversation as the uploader sees it: the peer's user id (direct) or the band's id.
    conversation_id  uuid NOT NULL,
    size             bigint NOT NULL CHECK (size > 0),
    created_at       bigint NOT NULL,
    message_id       uuid REFERENCES messages(id) ON DELETE SET NULL,
    bound_at         bigint,
    -- Set when its message is deleted for everyone: the sweep removes the bytes.
    deleted_at       bigint,
    -- Set once the sweep removed the bytes; the row stays until the quota's day has passed,
    -- so deleting attachments does not give the day's quota back.
    removed_at       bigint
);
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_uploader_day ON attachments (uploader_id, created_at);
CREATE INDEX attachments_to_sweep ON attachments (created_at) WHERE removed_at IS NULL;
