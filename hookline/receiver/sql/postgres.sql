-- The receiver's inbox on PostgreSQL. Each block is one query; sqlite.sql defines the same
-- names. Parameters are written :name (numbered when loaded); times are Unix seconds from the receiver's clock.

-- schema --
CREATE TABLE IF NOT EXISTS inbox_webhooks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    event_id TEXT UNIQUE,
    content_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ts TEXT NOT NULL,
    body BYTEA NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    -- The W3C trace context the webhook came with: its handlers' span continues it.
    traceparent TEXT
);
CREATE INDEX IF NOT EXISTS inbox_webhooks_lane
    ON inbox_webhooks (user_id, ts, id) WHERE status = 'pending';
-- Partial, so that storing a new (pending) webhook does not touch it.
CREATE INDEX IF NOT EXISTS inbox_webhooks_finished
    ON inbox_webhooks (status, finished_at) WHERE status <> 'pending';
CREATE TABLE IF NOT EXISTS inbox_lanes (
    user_id TEXT PRIMARY KEY,
    owner TEXT,
    lease_until DOUBLE PRECISION,
    due_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS inbox_lanes_due ON inbox_lanes (due_at) WHERE due_at IS NOT NULL;
-- The lanes are a small table of hot rows: leases are taken and renewed in place (HOT
-- updates, which need free room on the page) and its dead rows are vacuumed early.
DO $$
BEGIN
    IF NOT coalesce(
        (SELECT 'fillfactor=50' = ANY(reloptions) FROM pg_class WHERE oid = 'inbox_lanes'::regclass),
        false
    ) THEN
        ALTER TABLE inbox_lanes SET (
            fillfactor = 50,
            autovacuum_vacuum_scale_factor = 0,
            autovacuum_vacuum_threshold = 1000,
            autovacuum_vacuum_cost_delay = 0
        );
        -- Every handled webhook leaves one dead row version (pending -> done changes the
        -- partial indexes): vacuumed at 2 % of the table rather than the default 20 %.
        ALTER TABLE inbox_webhooks SET (
            autovacuum_vacuum_scale_factor = 0.02,
            autovacuum_vacuum_insert_scale_factor = 0.05
        );
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS inbox_once (
    key TEXT PRIMARY KEY,
    webhook_id BIGINT NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL
);

-- add_traceparent --
-- An inbox made before webhooks kept their trace context.
ALTER TABLE inbox_webhooks ADD COLUMN IF NOT EXISTS traceparent TEXT

-- insert_webhook --
-- A whole batch in one statement: each parameter is an array with one element per webhook
-- (sqlite.sql takes one webhook). A row that collides (token or event id seen) is skipped.
INSERT INTO inbox_webhooks
    (token, event_id, content_hash, user_id, event_type, ts, body, next_attempt_at, received_at,
     traceparent)
SELECT * FROM unnest(
    :token::text[], :event_id::text[], :content_hash::text[], :user_id::text[],
    :event_type::text[], :ts::text[], :body::bytea[], :now::float8[], :now::float8[],
    :traceparent::text[]
)
ON CONFLICT DO NOTHING
RETURNING token

-- find_conflict --
SELECT token, event_id, content_hash FROM inbox_webhooks
WHERE token = :token OR event_id = :event_id
ORDER BY token = :token DESC
LIMIT 1

-- wake_lane --
-- Arrays again, one element per user (each user once), locked in user order. A lane that
-- is due already is locked but not written: no new row version, no dead tuple, for the
-- many webhooks that arrive while their user's lane is waiting or running.
INSERT INTO inbox_lanes (user_id, due_at)
SELECT * FROM unnest(:user_id::text[], :due_at::float8[]) AS wake (user_id, due_at)
ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE SET due_at = excluded.due_at
WHERE inbox_lanes.due_at IS NULL OR inbox_lanes.due_at > excluded.due_at

-- claim_lanes --
-- :running are the lanes this process is still running (or giving back): never claimed
-- again while their task lives, even with the lease run out.
UPDATE inbox_lanes SET owner = :owner, lease_until = :lease_until
WHERE user_id IN (
    SELECT user_id FROM inbox_lanes
    WHERE due_at <= :now AND (owner IS NULL OR lease_until < :now)
      AND NOT (user_id = ANY(:running::text[]))
    ORDER BY due_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
AND due_at <= :now AND (owner IS NULL OR lease_until < :now)
RETURNING user_id

-- lane_owner --
SELECT owner FROM inbox_lanes WHERE user_id = :user_id FOR UPDATE

-- lane_head --
SELECT id, body, attempts, next_attempt_at, traceparent FROM inbox_webhooks
WHERE user_id = :user_id AND status = 'pending'
ORDER BY ts, id
LIMIT 1

-- release_lane --
UPDATE inbox_lanes SET owner = NULL, lease_until = NULL, due_at = :due_at
WHERE user_id = :user_id AND owner = :owner

-- forget_lane --
-- A lane given back with nothing pending is deleted rather than kept (one row for every
-- user ever seen). A webhook stored meanwhile makes it again (wake_lane inserts).
DELETE FROM inbox_lanes WHERE user_id = :user_id AND owner = :owner

-- prune_lanes --
-- Lanes nobody holds with nothing pending that were kept (earlier versions kept them all).
-- Locks nothing it would wait for (SKIP LOCKED): never part of a lock cycle.
DELETE FROM inbox_lanes
WHERE user_id IN (
    SELECT user_id FROM inbox_lanes
    WHERE owner IS NULL AND due_at IS NULL
    FOR UPDATE SKIP LOCKED
)
AND owner IS NULL AND due_at IS NULL
AND NOT EXISTS (
    SELECT 1 FROM inbox_webhooks
    WHERE inbox_webhooks.user_id = inbox_lanes.user_id AND inbox_webhooks.status = 'pending'
)

-- renew_leases --
-- Rows are locked in user order, as every other statement that locks several lanes does
-- (storing a batch of webhooks): two of them never wait on each other in a cycle.
UPDATE inbox_lanes SET lease_until = :lease_until
WHERE user_id IN (
    SELECT user_id FROM inbox_lanes
    WHERE owner = :owner AND user_id = ANY(:user_ids::text[])
    ORDER BY user_id
    FOR UPDATE
)
AND owner = :owner
RETURNING user_id

-- release_all --
UPDATE inbox_lanes SET owner = NULL, lease_until = NULL
WHERE user_id IN (
    SELECT user_id FROM inbox_lanes WHERE owner = :owner ORDER BY user_id FOR UPDATE
)
AND owner = :owner

-- complete --
-- The three results below change a row only if it is still the run they record
-- (attempts unchanged): written again after a lost acknowledgement, they change nothing.
UPDATE inbox_webhooks
SET status = 'done', attempts = attempts + 1, finished_at = :now, last_error = NULL
WHERE id = :id AND status = 'pending' AND attempts = :attempts

-- retry_later --
UPDATE inbox_webhooks
SET attempts = attempts + 1, next_attempt_at = :next_attempt_at, last_error = :error
WHERE id = :id AND status = 'pending' AND attempts = :attempts

-- bury --
UPDATE inbox_webhooks
SET status = 'dead', attempts = attempts + 1, finished_at = :now, last_error = :error
WHERE id = :id AND status = 'pending' AND attempts = :attempts

-- claim_once --
INSERT INTO inbox_once (key, webhook_id, claimed_at) VALUES (:key, :webhook_id, :now)
ON CONFLICT DO NOTHING
RETURNING key

-- forget_once --
DELETE FROM inbox_once WHERE key = :key

-- list_webhooks --
SELECT id, event_type, user_id, event_id, ts, status, attempts, last_error, received_at,
       finished_at
FROM inbox_webhooks
WHERE status = :status
ORDER BY id
LIMIT :limit

-- get_webhook --
SELECT id, token, event_type, user_id, event_id, ts, status, attempts, last_error, body,
       received_at, finished_at, next_attempt_at
FROM inbox_webhooks
WHERE id = :id

-- replay_dead --
UPDATE inbox_webhooks
SET status = 'pending', attempts = 0, next_attempt_at = :now, finished_at = NULL
WHERE status = 'dead' AND (id = :id::bigint OR :id::bigint IS NULL)
RETURNING id, user_id

-- purge_finished --
DELETE FROM inbox_webhooks WHERE status = 'done' AND finished_at < :before
