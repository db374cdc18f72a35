-- An endpoint's rate limit, held across every worker: at most rate_limit deliveries a
-- second (NULL: no limit), up to rate_limit_burst at once after a quiet spell. rate_tat
-- is its GCRA state ("theoretical arrival time"): the moment it would be idle again had
-- every delivery so far gone out at the steady rate; each claim reads and advances it.
ALTER TABLE endpoints ADD COLUMN rate_limit DOUBLE PRECISION;
ALTER TABLE endpoints ADD COLUMN rate_limit_burst INTEGER NOT NULL DEFAULT 1;
ALTER TABLE endpoints ADD COLUMN rate_tat DOUBLE PRECISION;
