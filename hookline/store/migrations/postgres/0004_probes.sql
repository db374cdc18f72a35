-- Probes: an endpoint disabled for failing is probed in turn, the one probed longest ago
-- first; each probe moves it to the back, so no endpoint waits behind others forever.
ALTER TABLE endpoints ADD COLUMN probed_at DOUBLE PRECISION;
