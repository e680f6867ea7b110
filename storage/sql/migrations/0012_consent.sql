-- Consent (issue #13): message requests, blocks, band invitations and invite links.

-- A direct conversation is a contact only once accepted by whoever received its first
-- message. Conversations from before this change count as accepted, so nobody loses a
-- contact. ``requester`` sent the first message of a request (NULL: never a request, e.g.
-- band-mates); ``requested_at`` is when, and counts towards REQUESTS_PER_DAY;
-- ``request_messages`` is how many the requester sent while it was pending.
ALTER TABLE direct_conversations
    ADD COLUMN status text NOT NULL DEFAULT 'accepted'
        CHECK (status IN ('pending', 'accepted', 'declined')),
    ADD COLUMN requester uuid REFERENCES users(id) ON DELETE CASCADE,
    ADD COLUMN requested_at bigint,
    ADD COLUMN request_messages integer NOT NULL DEFAULT 0;
CREATE INDEX direct_conversations_requests_opened
    ON direct_conversations (requester, requested_at) WHERE requester IS NOT NULL;

-- A copy that arrived as a message request (the recipient's copy only).
ALTER TABLE inbox ADD COLUMN request boolean NOT NULL DEFAULT false;

-- blocker blocked blocked: nothing flows between the two, either way.
CREATE TABLE user_blocks (
    blocker     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    PRIMARY KEY (blocker, blocked),
    CHECK (blocker <> blocked)
);
CREATE INDEX user_blocks_blocked ON user_blocks (blocked);

-- An invitation to join a band; the invitee becomes a member only by accepting it.
CREATE TABLE band_invitations (
    id          uuid PRIMARY KEY,
    band_id     uuid NOT NULL REFERENCES bands(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('admin', 'member')),
    invited_by  uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'declined', 'withdrawn', 'expired'))
);
-- One pending invitation per band and user (expired ones are marked before a new one).
CREATE UNIQUE INDEX band_invitations_one_pending
    ON band_invitations (band_id, user_id) WHERE status = 'pending';
CREATE INDEX band_invitations_user ON band_invitations (user_id) WHERE status = 'pending';
CREATE INDEX band_invitations_band_day ON band_invitations (band_id, created_at);
CREATE INDEX band_invitations_inviter_day ON band_invitations (invited_by, created_at);

-- Invite links: only the SHA-256 digest of the token is kept.
CREATE TABLE band_invite_links (
    digest      bytea PRIMARY KEY,
    band_id     uuid NOT NULL REFERENCES bands(id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('admin', 'member')),
    created_by  uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    max_uses    integer,
    uses        integer NOT NULL DEFAULT 0,
    withdrawn   boolean NOT NULL DEFAULT false
);
CREATE INDEX band_invite_links_band_day ON band_invite_links (band_id, created_at);
CREATE INDEX band_invite_links_creator_day ON band_invite_links (created_by, created_at);
