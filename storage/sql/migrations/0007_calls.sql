-- Call history. A live call is in Redis; its row is written once, when it ends.
CREATE TABLE calls (
    id           uuid PRIMARY KEY,
    caller_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    callee_id    uuid REFERENCES users(id) ON DELETE CASCADE,
    -- No foreign key: a band's call history outlives the band.
    band_id      uuid,
    instance     text NOT NULL CHECK (instance IN ('main', 'meet', 'chat')),
    media        text NOT NULL CHECK (media IN ('audio', 'video')),
    started_at   bigint NOT NULL,
    answered_at  bigint,
    ended_at     bigint NOT NULL,
    outcome      text NOT NULL
                 CHECK (outcome IN ('answered', 'declined', 'missed', 'cancelled', 'busy')),
    CHECK ((callee_id IS NULL) <> (band_id IS NULL))
);

-- Everyone a call involved (the caller and every callee), so each sees it in their history;
-- started_at is copied here so a user's page is one index range scan.
CREATE TABLE call_participants (
    call_id     uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    started_at  bigint NOT NULL,
    PRIMARY KEY (call_id, user_id)
);
CREATE INDEX call_participants_history ON call_participants (user_id, started_at DESC, call_id DESC);
