-- Messages that relate to another one: a reaction, a reply, an edit (in clear, so the hub
-- can check and list them; the content stays encrypted). A message deleted for everyone
-- keeps its row (who sent it, when) but loses its ciphertext: see deleted_at.
ALTER TABLE messages
    ADD COLUMN relates_type text,
    ADD COLUMN relates_to   uuid,
    ADD COLUMN deleted_at   bigint,
    ADD COLUMN deleted_by   uuid,
    ADD CONSTRAINT messages_relation CHECK (
        (relates_type IS NULL) = (relates_to IS NULL)
        AND (relates_type IS NULL OR relates_type IN ('reaction', 'reply', 'edit', 'delete'))
    );
CREATE INDEX messages_relates_to ON messages (relates_to) WHERE relates_to IS NOT NULL;

-- Each copy carries its message's relation, so catch-up and history read one table.
ALTER TABLE inbox
    ADD COLUMN relates_type text,
    ADD COLUMN relates_to   uuid;
CREATE INDEX inbox_relates_to ON inbox (user_id, relates_to) WHERE relates_to IS NOT NULL;
