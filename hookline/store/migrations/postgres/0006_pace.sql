-- Endpoint state shared by every engine: when it last answered a 2xx (a delivery that
-- fails while it does is retried within seconds), and its pace after a "slow down"
-- answer (seconds between two requests, 0 when unpaced) with the time before which no
-- request goes to it, and when it was last slowed down (a burst of such answers to
-- requests sent before that slows it once).
ALTER TABLE endpoints ADD COLUMN last_success_at DOUBLE PRECISION;
ALTER TABLE endpoints ADD COLUMN pace DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN pause_until DOUBLE PRECISION;
ALTER TABLE endpoints ADD COLUMN slowed_at DOUBLE PRECISION;
