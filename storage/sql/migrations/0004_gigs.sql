-- Gigs: money in integer minor units with an ISO 4217 currency, never floats.
CREATE TABLE gigs (
    id                uuid PRIMARY KEY,
    band_id           uuid NOT NULL REFERENCES bands(id) ON DELETE CASCADE,
    venue_name        text NOT NULL,
    date              date NOT NULL,
    start_time        time,
    end_time          time,
    fee_amount        bigint NOT NULL DEFAULT 0 CHECK (fee_amount >= 0),
    currency          char(3) NOT NULL DEFAULT 'EUR',
    location_address  text,
    notes             text,
    status            text NOT NULL DEFAULT 'inquiry'
                      CHECK (status IN ('inquiry', 'confirmed', 'played', 'paid', 'cancelled')),
    created_at        bigint NOT NULL,
    updated_at        bigint NOT NULL
);
CREATE INDEX gigs_band_date ON gigs (band_id, date, id);
