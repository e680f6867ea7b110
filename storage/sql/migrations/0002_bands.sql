-- Bands and their members (the bands issue adds the REST side).
CREATE TABLE bands (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    genre       text,
    owner_id    uuid NOT NULL REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE band_members (
    band_id    uuid NOT NULL REFERENCES bands(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  bigint NOT NULL,
    PRIMARY KEY (band_id, user_id)
);
CREATE INDEX band_members_user ON band_members (user_id);
