-- Devices and sessions: a session is one login of one device, and its refresh family.

-- A user's devices, as the phones name themselves (the socket's `auth.device`). A device row
-- lives while the device has a session; revoking the device deletes it, and with it its
-- biometric keys.
CREATE TABLE devices (
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    id           text NOT NULL,
    name         text,
    platform     text,
    created_at   bigint NOT NULL,
    last_seen_at bigint,
    PRIMARY KEY (user_id, id)
);

-- One login: its id is the refresh family's id and the `sid` of its access tokens. The device
-- is null until the first socket connect binds it (a login that named no device).
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id      text,
    auth_time      bigint NOT NULL,
    created_at     bigint NOT NULL,
    revoked_at     bigint,
    revoked_reason text
);
CREATE INDEX sessions_user ON sessions (user_id);
-- A device has at most one live session.
CREATE UNIQUE INDEX sessions_live_device ON sessions (user_id, device_id)
    WHERE revoked_at IS NULL AND device_id IS NOT NULL;

-- Every refresh family still in use becomes a session (its device is bound at its next
-- connect); revoked families are dead and go.
INSERT INTO sessions (id, user_id, device_id, auth_time, created_at)
SELECT family_id, user_id, NULL, min(created_at), min(created_at)
FROM refresh_tokens GROUP BY family_id, user_id HAVING count(revoked_at) = 0;
DELETE FROM refresh_tokens WHERE family_id NOT IN (SELECT id FROM sessions);
ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_session FOREIGN KEY (family_id)
    REFERENCES sessions(id) ON DELETE CASCADE;

-- A biometric key belongs to the device that registered it and dies with it (keys from
-- before devices have none).
ALTER TABLE biometric_keys ADD COLUMN device_id text;
ALTER TABLE biometric_keys
    ADD CONSTRAINT biometric_keys_device FOREIGN KEY (user_id, device_id)
    REFERENCES devices(user_id, id) ON DELETE CASCADE;
