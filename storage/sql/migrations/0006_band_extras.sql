-- Bands: the salt of the calendar feed's secret URL, and exactly one owner per band.
--
-- The feed token itself is never stored: the hub derives it as an HMAC of the band id and
-- this salt under a server key, so a copy of the database reveals no feed URL. Rotating the
-- token replaces the salt, which kills every URL made from the old one.
ALTER TABLE bands ADD COLUMN calendar_salt uuid NOT NULL DEFAULT gen_random_uuid();

-- bands.owner_id and the member with role 'owner' name the same user; an ownership handover
-- demotes the old owner before promoting the new one, in one transaction.
CREATE UNIQUE INDEX band_members_one_owner ON band_members (band_id) WHERE role = 'owner';

-- "My bands" is read by name; gigs of several bands by date (gigs_band_date serves one band).
CREATE INDEX bands_name_id ON bands (name, id);
CREATE INDEX gigs_date_id ON gigs (date, id);
