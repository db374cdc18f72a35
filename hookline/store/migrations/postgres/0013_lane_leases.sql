-- Leased lanes are found by their holder, not their lease's end: a lane kept for its next
-- delivery has its lease extended, and that write then touches no index (a HOT update,
-- which vacuum need not clean after and which leaves no dead index entries).
DROP INDEX lanes_leased;
CREATE INDEX lanes_leased ON lanes (endpoint_id) WHERE lease_owner IS NOT NULL;
-- A few hundred rows, each rewritten several times a second under load: room in each
-- page for the new versions (so updates stay HOT), and vacuumed after a few thousand
-- dead rows rather than a fifth of the table, without the cost-based sleeps.
ALTER TABLE lanes SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 2000
);
