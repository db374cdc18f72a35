-- Named queries for PostgreSQL. Every block here has a twin of the same name in
-- sqlite.sql; parameters are :named in both (numbered $n when loaded). Batches travel
-- as one JSON array parameter (:rows) so that a batch of any size costs a fixed number
-- of statements. Lane rows are always locked in (endpoint_id, lane) order, so a
-- publish and a record touching the same lanes wait for each other, never dead-lock.

-- create_app --
INSERT INTO apps (id, name, api_key_hash, verification_key, created_at)
VALUES (:id, :name, :api_key_hash, :verification_key, :now)
RETURNING *;

-- get_app --
SELECT * FROM apps WHERE id = :id;

-- get_app_by_key_hash --
SELECT * FROM apps WHERE api_key_hash = :api_key_hash;

-- list_apps --
-- A page in (created_at, id) order after the cursor's row; a NULL limit is no limit.
SELECT * FROM apps
WHERE :after_at::double precision IS NULL OR (created_at, id) > (:after_at, :after_key::text)
ORDER BY created_at, id
LIMIT :limit::bigint;

-- create_installation --
INSERT INTO installations (app_id, user_id, created_at)
VALUES (:app_id, :user_id, :now)
ON CONFLICT (user_id, app_id) DO NOTHING;

-- get_installation --
SELECT * FROM installations WHERE app_id = :app_id AND user_id = :user_id;

-- count_installations --
SELECT count(*) AS n FROM installations WHERE app_id = :app_id;

-- list_installations --
SELECT * FROM installations
WHERE app_id = :app_id AND (:after_at::double precision IS NULL OR (created_at, user_id) > (:after_at, :after_key::text))
ORDER BY created_at, user_id
LIMIT :limit::bigint;

-- lock_app --
-- Held until commit: an app's endpoints are counted and created one at a time.
SELECT id FROM apps WHERE id = :id FOR UPDATE;

-- count_endpoints --
-- The app's operational endpoint is its operator_url, not counted among its endpoints.
SELECT COUNT(*) AS n FROM endpoints WHERE app_id = :app_id AND operational = 0;

-- create_endpoint --
INSERT INTO endpoints (id, app_id, url, event_types, timeout, ordered, max_in_flight,
                       headers, client_cert, client_key, verification_key, enabled,
                       operational, rate_limit, rate_limit_burst, created_at, updated_at)
VALUES (:id, :app_id, :url, :event_types, :timeout, :ordered, :max_in_flight, :headers,
        :client_cert, :client_key, :verification_key, 1, :operational, :rate_limit,
        :rate_limit_burst, :now, :now)
RETURNING *;

-- get_endpoint --
SELECT * FROM endpoints WHERE id = :id;

-- list_endpoints --
SELECT * FROM endpoints
WHERE app_id = :app_id AND (:after_at::double precision IS NULL OR (created_at, id) > (:after_at, :after_key::text))
ORDER BY created_at, id
LIMIT :limit::bigint;

-- disable_endpoints --
UPDATE endpoints
SET enabled = 0, disabled_reason = j.reason, failing_since = NULL,
    updated_at = :now
FROM jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, reason text)
WHERE endpoints.id = j.endpoint_id AND endpoints.enabled = 1
RETURNING endpoints.id, endpoints.app_id, endpoints.url, endpoints.operational;

-- insert_events --
INSERT INTO events (id, event_type, user_id, data, created_at, traceparent)
SELECT j.value ->> 'id', j.value ->> 'event_type', j.value ->> 'user_id',
       j.value ->> 'data', :now, j.value ->> 'traceparent'
FROM jsonb_array_elements(:rows::jsonb) WITH ORDINALITY AS j(value, ord)
ORDER BY j.ord
ON CONFLICT (id) DO NOTHING
RETURNING seq, id, event_type, user_id, created_at;

-- get_events_by_ids --
SELECT seq, id, event_type, user_id, created_at
FROM events WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb));

-- get_event --
SELECT * FROM events WHERE id = :id;

-- fanout_targets --
SELECT i.user_id, e.id AS endpoint_id, e.app_id, e.event_types, e.ordered
FROM installations AS i
JOIN endpoints AS e ON e.app_id = i.app_id
WHERE e.enabled = 1 AND e.operational = 0 AND i.user_id IN (SELECT jsonb_array_elements_text(:users::jsonb))
ORDER BY e.id;

-- insert_deliveries --
-- Ids follow the batch's order, and the batch is in event order. The lanes were locked
-- first (grow_lanes), so a delivery committed later in the same lane gets a later id.
INSERT INTO deliveries (event_seq, endpoint_id, app_id, user_id, event_type, lane, token,
                        next_attempt_at, created_at, updated_at)
SELECT j.event_seq, j.endpoint_id, j.app_id, j.user_id, j.event_type, j.lane, j.token,
       :now, :now, :now
FROM ROWS FROM (jsonb_to_recordset(:rows::jsonb) AS (
         event_seq bigint, endpoint_id text, app_id text, user_id text, event_type text,
         lane text, token text))
     WITH ORDINALITY AS j(event_seq, endpoint_id, app_id, user_id, event_type, lane, token, ord)
ORDER BY j.ord;

-- grow_lanes --
INSERT INTO lanes (endpoint_id, lane, pending, next_attempt_at)
SELECT j.endpoint_id, j.lane, j.count, :now
FROM jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, lane text, count integer)
ORDER BY j.endpoint_id, j.lane
ON CONFLICT (endpoint_id, lane) DO UPDATE
SET pending = lanes.pending + excluded.pending,
    next_attempt_at = COALESCE(lanes.next_attempt_at, excluded.next_attempt_at);

-- notify_published --
-- Sent inside the publishing transaction: listeners hear of it once it is committed.
SELECT pg_notify('hookline_published', '');

-- lock_claims --
-- Claims run one at a time across all processes (until commit), so that the lanes the
-- others leased are counted against each endpoint's in-flight cap. A claim is a few
-- short statements, so the wait is short.
-- A claim is also always committed durably, whatever the transaction asked for: a lease
-- the server forgot in a crash would let a second worker (on another host, still alive)
-- send what the first one is sending.
SELECT pg_advisory_xact_lock(7031964201), set_config('synchronous_commit', 'on', true);

-- claim_lanes --
-- Due lanes, oldest first, within three bounds counted over the leases of every engine:
-- each endpoint's in-flight cap, each app's cap (which also bounds its endpoints'), and
-- each app's fair share of the slots, split evenly among the apps that have work. So an
-- app whose endpoints never answer holds its share at most, and the others go on. Apps
-- take turns: every app's oldest lane, then every app's second oldest, and so on.
-- Lanes are looked up from the endpoints with room left, so a backlog behind endpoints
-- or apps at their cap costs a claim nothing. A lane whose lease ran out (its worker
-- died) is due again. An endpoint paused after a "slow down" answer is skipped, and a
-- paced one gives one lane per claim (the claim then pauses it for its pace). A
-- rate-limited one gives at most what its limit allows now (:rates, worked out by the
-- claim from rate_limits); where both hold, the stricter wins.
WITH rated AS (
    SELECT * FROM jsonb_to_recordset(:rates::jsonb) AS j(endpoint_id text, allowed integer)
), leased AS (
    SELECT l.endpoint_id, e.app_id, COUNT(*) AS n
    FROM lanes AS l
    JOIN endpoints AS e ON e.id = l.endpoint_id
    WHERE l.lease_owner IS NOT NULL AND l.lease_until > :now  -- lanes_leased
    GROUP BY l.endpoint_id, e.app_id
), app_leased AS (
    SELECT app_id, SUM(n) AS n FROM leased GROUP BY app_id
), open AS (
    SELECT e.id, e.app_id, e.timeout, e.pace,
           LEAST(LEAST(COALESCE(e.max_in_flight, :default_cap::int), :app_cap::int,
                       CASE WHEN e.pace > 0 THEN 1 ELSE :app_cap::int END) - COALESCE(b.n, 0),
                 COALESCE(r.allowed, :app_cap::int)) AS room
    FROM endpoints AS e
    LEFT JOIN leased AS b ON b.endpoint_id = e.id
    LEFT JOIN rated AS r ON r.endpoint_id = e.id
    LEFT JOIN app_leased AS ab ON ab.app_id = e.app_id
    WHERE e.enabled = 1 AND COALESCE(ab.n, 0) < :app_cap::int
      AND (e.pause_until IS NULL OR e.pause_until <= :now)
), due AS (
    SELECT l.endpoint_id, o.app_id, l.lane, l.next_attempt_at, o.timeout, o.pace, o.room,
           ROW_NUMBER() OVER (PARTITION BY l.endpoint_id ORDER BY l.next_attempt_at) AS rank
    FROM open AS o
    CROSS JOIN lanes AS l  -- open endpoints first
    WHERE o.room > 0 AND l.endpoint_id = o.id AND l.next_attempt_at <= :now
      -- A lane kept by its holder for its next delivery (see continue_lanes) still has
      -- its first lease's end as next_attempt_at: skipped while the lease holds.
      AND (l.lease_until IS NULL OR l.lease_until <= :now)
), allowed AS (
    SELECT endpoint_id, app_id, lane, next_attempt_at, timeout, pace,
           ROW_NUMBER() OVER (PARTITION BY app_id ORDER BY next_attempt_at) AS turn
    FROM due
    WHERE rank <= room
), share AS (
    SELECT GREATEST(1, :slots::int / COUNT(*)) AS n
    FROM (SELECT app_id FROM allowed UNION SELECT app_id FROM app_leased) AS busy_apps
)
SELECT a.endpoint_id, a.lane, a.timeout, a.pace
FROM allowed AS a
CROSS JOIN share
LEFT JOIN app_leased AS b ON b.app_id = a.app_id
WHERE a.turn <= LEAST(:app_cap::int, share.n) - COALESCE(b.n, 0)
ORDER BY a.turn, a.next_attempt_at
LIMIT :limit;

-- lease_lanes --
-- Lanes a publish or a record holds right now are skipped, not waited for: they are
-- claimed on the next round. The lease conditions are checked again under the lock.
WITH wanted AS (
    SELECT * FROM jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, lane text, until float8)
), free AS (
    SELECT l.endpoint_id, l.lane, w.until
    FROM lanes AS l
    JOIN wanted AS w ON w.endpoint_id = l.endpoint_id AND w.lane = l.lane
    WHERE (l.lease_until IS NULL OR l.lease_until <= :now) AND l.next_attempt_at <= :now
    ORDER BY l.endpoint_id, l.lane
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE lanes
SET lease_owner = :owner, lease_until = free.until, next_attempt_at = free.until
FROM free
WHERE lanes.endpoint_id = free.endpoint_id AND lanes.lane = free.lane
RETURNING lanes.endpoint_id, lanes.lane;

-- rate_limits --
-- What a claim needs to hold endpoints to their rate limits (and when the next one
-- opens after a pause): endpoints are few, and these fewer still.
SELECT id, rate_limit, rate_limit_burst, rate_tat, pace, pause_until FROM endpoints
WHERE enabled = 1 AND (rate_limit IS NOT NULL OR pause_until > :now);

-- take_rates --
-- Rate-limited endpoints just given lanes: their GCRA state moves on (see Store.claim).
UPDATE endpoints SET rate_tat = j.tat
FROM jsonb_to_recordset(:rows::jsonb) AS j(id text, tat float8)
WHERE endpoints.id = j.id;

-- pace_endpoints --
-- A paced endpoint just given a lane: the next one goes out a pace later.
UPDATE endpoints SET pause_until = :now + pace
WHERE pace > 0 AND id IN (SELECT jsonb_array_elements_text(:ids::jsonb));

-- lane_heads --
SELECT d.id, d.token, d.attempts, d.updated_at, d.endpoint_id, d.lane, d.user_id, d.app_id, d.event_type,
       ev.id AS event_id, ev.data, ev.traceparent, e.url, e.timeout, e.headers,
       e.client_cert, e.client_key, e.updated_at AS endpoint_updated_at,
       -- The endpoint's own key when it has one, else its app's (with their rotations).
       CASE WHEN e.verification_key IS NULL THEN a.verification_key
            ELSE e.verification_key END AS verification_key,
       CASE WHEN e.verification_key IS NULL THEN a.next_verification_key
            ELSE e.next_verification_key END AS next_verification_key,
       CASE WHEN e.verification_key IS NULL THEN a.key_switch_at
            ELSE e.key_switch_at END AS key_switch_at
FROM jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, lane text)
CROSS JOIN LATERAL (
    SELECT * FROM deliveries AS x
    WHERE x.endpoint_id = j.endpoint_id AND x.lane = j.lane AND x.status = 'pending'
    ORDER BY x.id LIMIT 1) AS d
JOIN events AS ev ON ev.seq = d.event_seq
JOIN endpoints AS e ON e.id = d.endpoint_id
JOIN apps AS a ON a.id = d.app_id;

-- lock_lanes --
-- First thing a record does: take its lanes in the one global order (see the top).
SELECT 1 FROM lanes
WHERE (endpoint_id, lane) IN (
    SELECT j.endpoint_id, j.lane
    FROM jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, lane text))
ORDER BY endpoint_id, lane
FOR UPDATE;

-- insert_attempts --
-- A delivery deleted while in flight (its endpoint or app removed) has no row to log to.
-- (One deleted between this read and the insert fails the foreign key; the engine
-- records again, and then it is not found.)
INSERT INTO attempts (delivery_id, attempted_at, outcome, status_code, latency_ms,
                      response_excerpt, error)
SELECT j.delivery_id, j.attempted_at, j.outcome, j.status_code, j.latency_ms,
       j.response_excerpt, j.error
FROM jsonb_to_recordset(:rows::jsonb) AS j(
    delivery_id bigint, attempted_at float8, outcome text, status_code integer,
    latency_ms float8, response_excerpt text, error text)
JOIN deliveries d ON d.id = j.delivery_id;

-- finish_deliveries --
UPDATE deliveries
SET status = j.status, attempts = deliveries.attempts + 1, next_attempt_at = NULL,
    last_status_code = j.status_code, last_error = j.error, updated_at = :now
FROM jsonb_to_recordset(:rows::jsonb) AS j(
    delivery_id bigint, status text, status_code integer, error text)
WHERE deliveries.id = j.delivery_id AND deliveries.status = 'pending'
RETURNING deliveries.id, deliveries.endpoint_id, deliveries.lane;

-- reschedule_deliveries --
UPDATE deliveries
SET attempts = deliveries.attempts + j.counted, next_attempt_at = j.retry_at,
    last_status_code = j.status_code, last_error = j.error, updated_at = :now
FROM jsonb_to_recordset(:rows::jsonb) AS j(
    delivery_id bigint, counted integer, retry_at float8, status_code integer, error text)
WHERE deliveries.id = j.delivery_id AND deliveries.status = 'pending';

-- continue_lanes --
-- A lane whose head was just answered keeps its lease for its next delivery, which goes
-- out at once instead of after a release and a new claim. Only where a claim would give
-- the lane out too: its endpoint enabled, not paused, neither paced nor rate-limited
-- (their lanes go through claims, which space them and keep the limit's state under the
-- claim lock), its next head due (a retry waits for its time), and the endpoint, its
-- app and the app's fair share of :slots within bounds, counted over every engine's
-- leases as a claim counts them. This lane is one of those leases already: keeping it
-- never adds to them, so no race with a claim can pass a cap
-- (and a record needs no claim lock).
-- A lane keeps its lease for :max_run deliveries in a row at most, then goes back to
-- the claims: the other lanes of a busy endpoint, and other apps, get their turn.
-- One row write, of columns no index holds (a HOT update): the lane's next_attempt_at
-- stays at its first lease's end, which claims skip while it is leased.
WITH wanted AS (
    SELECT * FROM jsonb_to_recordset(:rows::jsonb)
        AS j(endpoint_id text, lane text, count integer, run integer)
    WHERE j.run < :max_run::int
), leased AS (
    SELECT l.endpoint_id, e.app_id, COUNT(*) AS n
    FROM lanes AS l
    JOIN endpoints AS e ON e.id = l.endpoint_id
    WHERE l.lease_owner IS NOT NULL AND l.lease_until > :now  -- lanes_leased
    GROUP BY l.endpoint_id, e.app_id
), app_leased AS (
    SELECT app_id, SUM(n) AS n FROM leased GROUP BY app_id
), share AS (
    SELECT GREATEST(1, :slots::int / GREATEST(1, COUNT(*))) AS n FROM app_leased
), kept AS (
    SELECT w.endpoint_id, w.lane, w.count, e.timeout
    FROM wanted AS w
    JOIN lanes AS l ON l.endpoint_id = w.endpoint_id AND l.lane = w.lane
    JOIN endpoints AS e ON e.id = w.endpoint_id
    CROSS JOIN share
    LEFT JOIN leased AS b ON b.endpoint_id = e.id
    LEFT JOIN app_leased AS ab ON ab.app_id = e.app_id
    WHERE l.lease_owner = :owner AND l.pending > w.count
      AND e.enabled = 1 AND e.pace = 0 AND e.rate_limit IS NULL
      AND (e.pause_until IS NULL OR e.pause_until <= :now)
      AND COALESCE(b.n, 0) <= LEAST(COALESCE(e.max_in_flight, :default_cap::int), :app_cap::int)
      AND COALESCE(ab.n, 0) <= LEAST(:app_cap::int, share.n)
      AND (SELECT d.next_attempt_at FROM deliveries AS d
           WHERE d.endpoint_id = w.endpoint_id AND d.lane = w.lane AND d.status = 'pending'
           ORDER BY d.id LIMIT 1) <= :now
    ORDER BY w.endpoint_id, w.lane
    LIMIT :limit
)
UPDATE lanes
SET pending = lanes.pending - kept.count,
    lease_until = :now + LEAST(kept.timeout, :max_timeout::float8) + :margin
FROM kept
WHERE lanes.endpoint_id = kept.endpoint_id AND lanes.lane = kept.lane
RETURNING lanes.endpoint_id, lanes.lane;

-- drop_finished_lanes --
-- Lanes whose last pending deliveries just finished go, in one write. One that another
-- engine holds stays: its holder gives it back.
DELETE FROM lanes
USING jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, lane text, count integer)
WHERE lanes.endpoint_id = j.endpoint_id AND lanes.lane = j.lane
  AND lanes.pending <= j.count
  AND (lanes.lease_owner IS NULL OR lanes.lease_owner = :owner);

-- settle_lanes --
-- The other lanes of a record, in one row write each: their finished deliveries off
-- their count and, where this engine holds them, their lease given back, due again now
-- (the next head) or when the head that failed is retried.
UPDATE lanes
SET pending = lanes.pending - j.count,
    lease_owner = CASE WHEN lanes.lease_owner = :owner THEN NULL ELSE lanes.lease_owner END,
    lease_until = CASE WHEN lanes.lease_owner = :owner THEN NULL ELSE lanes.lease_until END,
    next_attempt_at = CASE WHEN lanes.lease_owner = :owner THEN COALESCE(j.retry_at, :now)
                           ELSE lanes.next_attempt_at END
FROM jsonb_to_recordset(:rows::jsonb)
    AS j(endpoint_id text, lane text, count integer, retry_at float8)
WHERE lanes.endpoint_id = j.endpoint_id AND lanes.lane = j.lane
  AND (j.count > 0 OR lanes.lease_owner = :owner);

-- release_owner --
-- A stopping engine hands back what it claimed but did not send.
UPDATE lanes
SET lease_owner = NULL, lease_until = NULL, next_attempt_at = :now
WHERE lease_owner = :owner;

-- get_delivery --
SELECT d.*, ev.id AS event_id, e.url
FROM deliveries AS d
JOIN events AS ev ON ev.seq = d.event_seq
JOIN endpoints AS e ON e.id = d.endpoint_id
WHERE d.id = :id;

-- list_deliveries --
SELECT d.*, ev.id AS event_id
FROM deliveries AS d
JOIN events AS ev ON ev.seq = d.event_seq
WHERE d.app_id = :app_id
  AND (:endpoint_id::text IS NULL OR d.endpoint_id = :endpoint_id)
  AND (:user_id::text IS NULL OR d.user_id = :user_id)
  AND (:event_type::text IS NULL OR d.event_type = :event_type)
  AND (:status::text IS NULL OR d.status = :status)
  AND (:since::float8 IS NULL OR d.created_at >= :since)
  AND (:until::float8 IS NULL OR d.created_at < :until)
  AND (:before::bigint IS NULL OR d.id < :before)
ORDER BY d.id DESC
LIMIT :limit;

-- attempts_of --
-- The first :head and the last :tail attempts of each delivery (all of them when there
-- are no more), so a delivery's log costs a bounded read whatever happened to it.
SELECT * FROM (
    SELECT a.*,
           ROW_NUMBER() OVER (PARTITION BY a.delivery_id ORDER BY a.id) AS from_first,
           ROW_NUMBER() OVER (PARTITION BY a.delivery_id ORDER BY a.id DESC) AS from_last
    FROM attempts AS a
    WHERE a.delivery_id IN (SELECT value::bigint FROM jsonb_array_elements_text(:ids::jsonb) AS value)) AS ranked
WHERE from_first <= :head OR from_last <= :tail
ORDER BY delivery_id, id;

-- trim_attempts --
-- Keep the first :head and the last :tail attempts of these deliveries; those between
-- go (the delivery's attempts column still counts them).
DELETE FROM attempts
WHERE id IN (
    SELECT id FROM (
        SELECT a.id,
               ROW_NUMBER() OVER (PARTITION BY a.delivery_id ORDER BY a.id) AS from_first,
               ROW_NUMBER() OVER (PARTITION BY a.delivery_id ORDER BY a.id DESC) AS from_last
        FROM attempts AS a
        WHERE a.delivery_id IN (SELECT value::bigint FROM jsonb_array_elements_text(:ids::jsonb) AS value)) AS ranked
    WHERE from_first > :head AND from_last > :tail);

-- get_full_events_by_ids --
SELECT * FROM events WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb));

-- clear_lanes --
DELETE FROM lanes
USING jsonb_to_recordset(:rows::jsonb) AS j(endpoint_id text, lane text)
WHERE lanes.endpoint_id = j.endpoint_id AND lanes.lane = j.lane;

-- vacuum_lanes --
-- The lanes table is a few hundred rows rewritten thousands of times a second under
-- load: what HOT updates leave is pruned in place, but a lease taken or given back, and
-- a lane deleted, leave dead rows and index entries only a vacuum clears. Engines run
-- this every few seconds, so the table stays small even where autovacuum is off or
-- behind; a vacuum another engine runs right now is not waited for.
VACUUM (SKIP_LOCKED) lanes;

-- prune_events --
-- A small batch of events created before :before none of whose deliveries is pending;
-- their deliveries and attempts go with them (ON DELETE CASCADE). Only the event's own
-- time counts: a retry or a recover touches its deliveries, but never keeps them longer.
-- Rows someone else is pruning right now are skipped.
DELETE FROM events
WHERE seq IN (
    SELECT ev.seq FROM events AS ev
    WHERE ev.created_at < :before
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS d
          WHERE d.event_seq = ev.seq AND d.status = 'pending')
    ORDER BY ev.created_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED)
RETURNING seq;

-- metrics_snapshot --
-- What /metrics reads on every scrape; each part is an index lookup or a small scan
-- (pending deliveries use their partial index, endpoints are few), never a full scan.
SELECT
    (SELECT COUNT(*) FROM deliveries WHERE status = 'pending') AS queue_depth,
    (SELECT MIN(l.next_attempt_at) FROM lanes AS l
     JOIN endpoints AS e ON e.id = l.endpoint_id
     WHERE l.next_attempt_at <= :now AND e.enabled = 1
       AND (l.lease_until IS NULL OR l.lease_until <= :now)) AS oldest_due_at,
    (SELECT COUNT(*) FROM endpoints WHERE enabled = 1) AS endpoints_enabled,
    (SELECT COUNT(*) FROM endpoints WHERE enabled = 0) AS endpoints_disabled;

-- retry_deliveries --
-- Back to pending and due now; the attempt log keeps what happened before. The caller
-- grows the lanes returned here so the engine finds them.
UPDATE deliveries
SET status = 'pending', next_attempt_at = :now, updated_at = :now
WHERE id IN (SELECT value::bigint FROM jsonb_array_elements_text(:ids::jsonb) AS value)
  AND status <> 'pending'
RETURNING endpoint_id, lane;

-- failed_delivery_ids --
SELECT id FROM deliveries
WHERE status = 'failed' AND id > :after
  AND (:app_id::text IS NULL OR app_id = :app_id)
  AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
  AND (:since::float8 IS NULL OR created_at >= :since)
ORDER BY id
LIMIT :limit;

-- count_failed_deliveries --
SELECT COUNT(*) AS n FROM deliveries
WHERE status = 'failed'
  AND (:app_id::text IS NULL OR app_id = :app_id)
  AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
  AND (:since::float8 IS NULL OR created_at >= :since);

-- delivery_timeline --
-- Deliveries per time bucket and status, for the dashboard's chart. Only the newest
-- :limit deliveries of the app are looked at (walking its index backwards), so a busy
-- app costs a bounded read; the chart then covers less than the whole window.
SELECT FLOOR((created_at - :since) / :bucket)::int AS bucket, status, COUNT(*) AS n
FROM (
    SELECT created_at, status FROM deliveries
    WHERE app_id = :app_id AND (:endpoint_id::text IS NULL OR endpoint_id = :endpoint_id)
    ORDER BY id DESC
    LIMIT :limit) AS recent
WHERE created_at >= :since
GROUP BY 1, status;

-- Operator and app surface (below): apps and their keys, endpoint changes, retries and
-- recovery, statistics, endpoint health.

-- rename_app --
UPDATE apps SET name = :name WHERE id = :id RETURNING *;

-- lock_lanes_of_app --
-- Before a delete: take the lanes it will remove in the one global order (see the
-- top), as a record does first. Deleting the endpoint row first and its lanes by
-- cascade after would take the two in the other order, and dead-lock with a record
-- that holds the lanes and then marks the endpoint healthy or failing.
SELECT 1 FROM lanes
WHERE endpoint_id IN (SELECT id FROM endpoints WHERE app_id = :id)
ORDER BY endpoint_id, lane
FOR UPDATE;

-- delete_app --
-- Installations, endpoints, their lanes, deliveries and attempts go with it (CASCADE).
DELETE FROM apps WHERE id = :id RETURNING id;

-- set_api_key_hash --
UPDATE apps SET api_key_hash = :api_key_hash WHERE id = :id RETURNING *;

-- set_verification_keys --
UPDATE apps
SET verification_key = :verification_key, next_verification_key = :next_verification_key,
    key_switch_at = :key_switch_at
WHERE id = :id
RETURNING *;

-- set_endpoint_keys --
UPDATE endpoints
SET verification_key = :verification_key, next_verification_key = :next_verification_key,
    key_switch_at = :key_switch_at, updated_at = :now
WHERE id = :id
RETURNING *;

-- retire_switched_endpoint_keys --
UPDATE endpoints
SET verification_key = next_verification_key, next_verification_key = NULL,
    key_switch_at = NULL
WHERE next_verification_key IS NOT NULL AND key_switch_at <= :now
RETURNING id;

-- retire_switched_keys --
-- Once signing has switched to the next key, it becomes the only key.
UPDATE apps
SET verification_key = next_verification_key, next_verification_key = NULL,
    key_switch_at = NULL
WHERE next_verification_key IS NOT NULL AND key_switch_at <= :now
RETURNING id;

-- count_apps --
SELECT COUNT(*) AS n FROM apps;

-- app_keys_after --
SELECT id, verification_key, next_verification_key FROM apps
WHERE id > :after ORDER BY id LIMIT :limit;

-- store_app_keys --
UPDATE apps
SET verification_key = j.verification_key, next_verification_key = j.next_verification_key
FROM jsonb_to_recordset(:rows::jsonb) AS j(
    id text, verification_key text, next_verification_key text)
WHERE apps.id = j.id;

-- endpoint_secrets_after --
-- The endpoints that hold sealed values, a page at a time (rotate-master-key).
SELECT id, headers, client_key, verification_key, next_verification_key FROM endpoints
WHERE id > :after
  AND (headers IS NOT NULL OR client_key IS NOT NULL OR verification_key IS NOT NULL)
ORDER BY id LIMIT :limit;

-- store_endpoint_secrets --
UPDATE endpoints
SET headers = j.headers, client_key = j.client_key, verification_key = j.verification_key,
    next_verification_key = j.next_verification_key
FROM jsonb_to_recordset(:rows::jsonb) AS j(
    id text, headers text, client_key text, verification_key text, next_verification_key text)
WHERE endpoints.id = j.id;

-- update_endpoint --
UPDATE endpoints
SET url = :url, event_types = :event_types, timeout = :timeout, ordered = :ordered,
    max_in_flight = :max_in_flight, enabled = :enabled, disabled_reason = :disabled_reason,
    failing_since = :failing_since, headers = :headers, client_cert = :client_cert,
    client_key = :client_key, rate_limit = :rate_limit, rate_limit_burst = :rate_limit_burst,
    updated_at = :now
WHERE id = :id
RETURNING *;

-- lock_lanes_of_endpoint --
-- See lock_lanes_of_app.
SELECT 1 FROM lanes WHERE endpoint_id = :id ORDER BY endpoint_id, lane
FOR UPDATE;

-- delete_endpoint --
DELETE FROM endpoints WHERE id = :id RETURNING id;

-- wake_endpoint_lanes --
-- An endpoint enabled again sends its backlog now, not when its old retries come due.
UPDATE lanes SET next_attempt_at = :now
WHERE endpoint_id = :endpoint_id AND lease_owner IS NULL;

-- recover_endpoint --
UPDATE deliveries
SET status = 'pending', next_attempt_at = :now, updated_at = :now
WHERE endpoint_id = :endpoint_id AND status = 'failed' AND created_at >= :since
RETURNING endpoint_id, lane;

-- delivery_of_event --
SELECT id FROM deliveries
WHERE event_seq = :event_seq AND endpoint_id = :endpoint_id
ORDER BY id DESC LIMIT 1;

-- endpoint_attempts --
-- The latest attempts of one endpoint in a window, at most :limit of them.
SELECT a.outcome, a.status_code, a.latency_ms
FROM deliveries AS d
JOIN attempts AS a ON a.delivery_id = d.id
WHERE d.endpoint_id = :endpoint_id AND d.updated_at >= :since AND a.attempted_at >= :since
ORDER BY a.id DESC
LIMIT :limit;

-- endpoint_backlog --
SELECT COALESCE(SUM(pending), 0)::bigint AS pending FROM lanes WHERE endpoint_id = :endpoint_id;

-- track_endpoints --
-- What a batch of attempts tells about their endpoints (see Store.record): a 2xx clears
-- failing_since, stamps last_success_at and takes the pace back towards unpaced (the
-- rate it allows grows by one request a second); a failure starts failing_since; a
-- "slow down" pauses the endpoint for what it asked or its pace, and doubles the pace
-- unless the request was sent before its last slow-down (one burst slows it once).
-- Only rows that change are written (and locked, in id order, so two records never
-- dead-lock on them): last_success_at at most once a :stamp seconds, so that records of
-- a busy endpoint do not queue for its row.
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(:rows::jsonb) AS j(
        endpoint_id text, answered_at float8, failed_at float8, throttle_for float8,
        sent_at float8)
), locked AS (
    SELECT e.id FROM endpoints AS e JOIN batch AS b ON b.endpoint_id = e.id
    WHERE b.throttle_for IS NOT NULL
       OR (b.answered_at IS NOT NULL
           AND (e.failing_since IS NOT NULL OR e.pace > 0 OR e.last_success_at IS NULL
                OR e.last_success_at < b.answered_at - :stamp))
       OR (b.answered_at IS NULL AND b.failed_at IS NOT NULL AND e.failing_since IS NULL)
    ORDER BY e.id
    FOR NO KEY UPDATE OF e
)
UPDATE endpoints
SET last_success_at = GREATEST(endpoints.last_success_at, b.answered_at),
    failing_since = CASE WHEN b.answered_at IS NOT NULL THEN NULL
                         ELSE COALESCE(endpoints.failing_since, b.failed_at) END,
    pace = CASE
        WHEN b.throttle_for IS NULL THEN
            CASE WHEN b.answered_at IS NULL OR endpoints.pace = 0 THEN endpoints.pace
                 WHEN endpoints.pace / (1 + endpoints.pace) < :pace_min THEN 0
                 ELSE endpoints.pace / (1 + endpoints.pace) END
        WHEN b.sent_at < endpoints.slowed_at THEN GREATEST(endpoints.pace, :pace_min)
        ELSE LEAST(GREATEST(endpoints.pace * 2, :pace_min), :pace_max) END,
    slowed_at = CASE
        WHEN b.throttle_for IS NULL OR b.sent_at < endpoints.slowed_at THEN endpoints.slowed_at
        ELSE :now END,
    pause_until = CASE
        WHEN b.throttle_for IS NULL THEN endpoints.pause_until
        ELSE GREATEST(endpoints.pause_until, :now + GREATEST(
            b.throttle_for, LEAST(GREATEST(endpoints.pace * 2, :pace_min), :pace_max)))
        END
FROM batch AS b, locked
WHERE endpoints.id = b.endpoint_id AND locked.id = b.endpoint_id;

-- endpoints_answered --
SELECT id, last_success_at FROM endpoints
WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb));

-- disable_failing_endpoints --
-- Endpoints failing since before :before. failing_since stays set: it is what marks an
-- endpoint as disabled by its health (and so probed), not by the operator or a 410.
UPDATE endpoints SET enabled = 0, disabled_reason = :reason, updated_at = :now
WHERE enabled = 1 AND failing_since IS NOT NULL AND failing_since <= :before
RETURNING id, app_id, url, failing_since, operational;

-- endpoints_to_probe --
-- Those probed longest ago (or never) first; mark_probed then moves them to the back.
-- Rows another engine is taking for its probes right now are skipped.
SELECT e.id, e.app_id, e.url, e.timeout, e.event_types, e.headers,
       e.client_cert, e.client_key, e.updated_at AS endpoint_updated_at,
       -- The endpoint's own key when it has one, else its app's (with their rotations).
       CASE WHEN e.verification_key IS NULL THEN a.verification_key
            ELSE e.verification_key END AS verification_key,
       CASE WHEN e.verification_key IS NULL THEN a.next_verification_key
            ELSE e.next_verification_key END AS next_verification_key,
       CASE WHEN e.verification_key IS NULL THEN a.key_switch_at
            ELSE e.key_switch_at END AS key_switch_at
FROM endpoints AS e
JOIN apps AS a ON a.id = e.app_id
WHERE e.enabled = 0 AND e.failing_since IS NOT NULL
ORDER BY COALESCE(e.probed_at, 0), e.failing_since, e.id
LIMIT :limit
FOR UPDATE OF e SKIP LOCKED;

-- mark_probed --
UPDATE endpoints SET probed_at = :now
WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb));

-- enable_probed_endpoint --
UPDATE endpoints
SET enabled = 1, disabled_reason = NULL, failing_since = NULL, probed_at = NULL,
    updated_at = :now
WHERE id = :id AND enabled = 0 AND failing_since IS NOT NULL
RETURNING id;

-- Operational webhooks (see Store.set_operator_url and Store._announce).

-- set_operator_url --
UPDATE apps SET operator_url = :operator_url WHERE id = :id RETURNING *;

-- operational_endpoint --
SELECT * FROM endpoints WHERE app_id = :app_id AND operational = 1;

-- set_operational_url --
UPDATE endpoints SET url = :url, updated_at = :now WHERE id = :id;

-- operational_endpoints --
-- The enabled operational endpoints of these apps (one per app at most).
SELECT id, app_id, ordered FROM endpoints
WHERE operational = 1 AND enabled = 1 AND app_id IN (SELECT jsonb_array_elements_text(:ids::jsonb));

-- endpoints_recovering --
-- Of these endpoints (just answered 2xx), the enabled ones failing since :before or
-- earlier whose app has an operational endpoint: their failure is over.
SELECT e.id, e.app_id, e.url, e.failing_since FROM endpoints AS e
WHERE e.id IN (SELECT jsonb_array_elements_text(:ids::jsonb))
  AND e.failing_since IS NOT NULL AND e.failing_since <= :before
  AND e.enabled = 1 AND e.operational = 0
  AND EXISTS (SELECT 1 FROM endpoints AS o
              WHERE o.app_id = e.app_id AND o.operational = 1 AND o.enabled = 1);
