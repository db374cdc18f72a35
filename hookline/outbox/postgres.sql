-- The outbox in the platform's own PostgreSQL database, and every statement that
-- touches it: the writes of ``hookline.publish`` (inside the platform's transaction)
-- and the reads and deletes of ``hookline relay``. Blocks start with ``-- name --``;
-- parameters are ``:name``.

-- install --
CREATE SCHEMA IF NOT EXISTS hookline;
CREATE TABLE IF NOT EXISTS hookline.outbox (
    -- The order rows are relayed in. Drawn after the user's lock (see ``write``), so
    -- for one user it is also the order the rows were committed in.
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Given at write, so that a row sent again after a crash is a duplicate hookline
    -- recognises, not a second event.
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    data         TEXT NOT NULL,          -- JSON text, exactly as it will be published
    traceparent  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when hookline refused the row (it is then kept, not relayed again).
    failed_at    TIMESTAMPTZ,
    error        TEXT
);
-- A queue: every row is deleted soon after it is written. Vacuumed after a fixed number
-- of dead rows rather than a fraction of a table that is nearly always empty, so the
-- relay's reads do not walk over dead index entries.
ALTER TABLE hookline.outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000
);
COMMENT ON TABLE hookline.outbox IS
    'Events published by the platform, waiting for `hookline relay`; version 1';

-- uninstall --
DROP TABLE IF EXISTS hookline.outbox;

-- lock --
-- Taken by uninstall before it counts the rows: it waits for every transaction that
-- wrote into the outbox and has not ended, so a row committed by one of them is
-- counted, not dropped unseen.
LOCK TABLE hookline.outbox IN ACCESS EXCLUSIVE MODE

-- where --
SELECT to_regclass('hookline.outbox') IS NOT NULL AS outbox

-- write --
-- The user's transaction-scoped advisory lock comes first, and the id is drawn after
-- it: a second transaction publishing for the same user waits here until the first
-- one commits or rolls back, so one user's ids grow in commit order and the relay,
-- which reads in id order, never sends a user's row before an earlier one that is
-- still uncommitted. (MATERIALIZED: the lock is taken before the row is formed.) The
-- notification reaches the relay when the transaction commits, never before.
WITH locked AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(70319642, hashtext(:user_id)) AS held,
           pg_notify('hookline_outbox', '') AS woken
)
INSERT INTO hookline.outbox (event_id, event_type, user_id, data, traceparent)
SELECT :event_id, :event_type, :user_id, :data, :traceparent FROM locked

-- lock_relay --
SELECT pg_try_advisory_lock(7031964202) AS locked

-- pending --
SELECT id, event_id, event_type, user_id, data, traceparent
FROM hookline.outbox
WHERE failed_at IS NULL
ORDER BY id
LIMIT :limit

-- delete --
DELETE FROM hookline.outbox WHERE id = ANY(:ids::bigint[])

-- fail --
UPDATE hookline.outbox SET failed_at = now(), error = :error WHERE id = :id

-- status --
SELECT count(*) FILTER (WHERE failed_at IS NULL) AS pending,
       count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed,
       extract(epoch FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL))
           AS oldest_seconds
FROM hookline.outbox
