-- Leased lanes are found by their holder, not their lease's end: a lane kept for its next
-- delivery has its lease extended, and that write then touches no index.
DROP INDEX lanes_leased;
CREATE INDEX lanes_leased ON lanes (endpoint_id) WHERE lease_owner IS NOT NULL;
