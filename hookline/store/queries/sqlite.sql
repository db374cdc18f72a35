-- Named queries for SQLite. Every block here has a twin of the same name in
-- postgres.sql; parameters are :named in both. Batches travel as one JSON array
-- parameter (:rows) so that a batch of any size costs a fixed number of statements.

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
WHERE :after_at IS NULL OR (created_at, id) > (:after_at, :after_key)
ORDER BY created_at, id
LIMIT coalesce(:limit, -1);

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
WHERE app_id = :app_id AND (:after_at IS NULL OR (created_at, user_id) > (:after_at, :after_key))
ORDER BY created_at, user_id
LIMIT coalesce(:limit, -1);

-- lock_app --
-- SQLite has one writer at a time: a write transaction holds every row already.
SELECT id FROM apps WHERE id = :id;

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
WHERE app_id = :app_id AND (:after_at IS NULL OR (created_at, id) > (:after_at, :after_key))
ORDER BY created_at, id
LIMIT coalesce(:limit, -1);

-- disable_endpoints --
UPDATE endpoints
SET enabled = 0, disabled_reason = j.value ->> 'reason', failing_since = NULL,
    updated_at = :now
FROM json_each(:rows) AS j
WHERE endpoints.id = j.value ->> 'endpoint_id' AND endpoints.enabled = 1
RETURNING endpoints.id, endpoints.app_id, endpoints.url, endpoints.operational;

-- insert_events --
INSERT INTO events (id, event_type, user_id, data, created_at, traceparent)
SELECT j.value ->> 'id', j.value ->> 'event_type', j.value ->> 'user_id',
       j.value ->> 'data', :now, j.value ->> 'traceparent'
FROM json_each(:rows) AS j
WHERE true
ORDER BY j.key
ON CONFLICT (id) DO NOTHING
RETURNING seq, id, event_type, user_id, created_at;

-- get_events_by_ids --
SELECT seq, id, event_type, user_id, created_at
FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- get_event --
SELECT * FROM events WHERE id = :id;

-- fanout_targets --
SELECT i.user_id, e.id AS endpoint_id, e.app_id, e.event_types, e.ordered
FROM installations AS i
JOIN endpoints AS e ON e.app_id = i.app_id
WHERE e.enabled = 1 AND e.operational = 0 AND i.user_id IN (SELECT value FROM json_each(:users))
ORDER BY e.id;

-- insert_deliveries --
INSERT INTO deliveries (event_seq, endpoint_id, app_id, user_id, event_type, lane, token,
                        next_attempt_at, created_at, updated_at)
SELECT j.value ->> 'event_seq', j.value ->> 'endpoint_id', j.value ->> 'app_id',
       j.value ->> 'user_id', j.value ->> 'event_type', j.value ->> 'lane',
       j.value ->> 'token', :now, :now, :now
FROM json_each(:rows) AS j
ORDER BY j.key;

-- grow_lanes --
INSERT INTO lanes (endpoint_id, lane, pending, next_attempt_at)
SELECT j.value ->> 'endpoint_id', j.value ->> 'lane', j.value ->> 'count', :now
FROM json_each(:rows) AS j
WHERE true
ON CONFLICT (endpoint_id, lane) DO UPDATE
SET pending = lanes.pending + excluded.pending,
    next_attempt_at = COALESCE(lanes.next_attempt_at, excluded.next_attempt_at);

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
    SELECT j.value ->> 'endpoint_id' AS endpoint_id, j.value ->> 'allowed' AS allowed
    FROM json_each(:rates) AS j
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
           MIN(MIN(COALESCE(e.max_in_flight, :default_cap), :app_cap,
                   CASE WHEN e.pace > 0 THEN 1 ELSE :app_cap END) - COALESCE(b.n, 0),
               COALESCE(r.allowed, :app_cap)) AS room
    FROM endpoints AS e
    LEFT JOIN leased AS b ON b.endpoint_id = e.id
    LEFT JOIN rated AS r ON r.endpoint_id = e.id
    LEFT JOIN app_leased AS ab ON ab.app_id = e.app_id
    WHERE e.enabled = 1 AND COALESCE(ab.n, 0) < :app_cap
      AND (e.pause_until IS NULL OR e.pause_until <= :now)
), due AS (
    SELECT l.endpoint_id, o.app_id, l.lane, l.next_attempt_at, o.timeout, o.pace, o.room,
           ROW_NUMBER() OVER (PARTITION BY l.endpoint_id ORDER BY l.next_attempt_at) AS rank
    FROM open AS o
    CROSS JOIN lanes AS l  -- open endpoints first, then each one's due lanes (its index)
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
    SELECT MAX(1, :slots / COUNT(*)) AS n
    FROM (SELECT app_id FROM allowed UNION SELECT app_id FROM app_leased) AS busy_apps
)
SELECT a.endpoint_id, a.lane, a.timeout, a.pace
FROM allowed AS a
CROSS JOIN share
LEFT JOIN app_leased AS b ON b.app_id = a.app_id
WHERE a.turn <= MIN(:app_cap, share.n) - COALESCE(b.n, 0)
ORDER BY a.turn, a.next_attempt_at
LIMIT :limit;

-- lease_lanes --
UPDATE lanes
SET lease_owner = :owner, lease_until = j.value ->> 'until', next_attempt_at = j.value ->> 'until'
FROM json_each(:rows) AS j
WHERE lanes.endpoint_id = j.value ->> 'endpoint_id' AND lanes.lane = j.value ->> 'lane'
  AND (lanes.lease_until IS NULL OR lanes.lease_until <= :now)
RETURNING lanes.endpoint_id, lanes.lane;

-- rate_limits --
-- What a claim needs to hold endpoints to their rate limits (and when the next one
-- opens after a pause): endpoints are few, and these fewer still.
SELECT id, rate_limit, rate_limit_burst, rate_tat, pace, pause_until FROM endpoints
WHERE enabled = 1 AND (rate_limit IS NOT NULL OR pause_until > :now);

-- take_rates --
-- Rate-limited endpoints just given lanes: their GCRA state moves on (see Store.claim).
UPDATE endpoints SET rate_tat = j.value ->> 'tat'
FROM json_each(:rows) AS j
WHERE endpoints.id = j.value ->> 'id';

-- pace_endpoints --
-- A paced endpoint just given a lane: the next one goes out a pace later.
UPDATE endpoints SET pause_until = :now + pace
WHERE pace > 0 AND id IN (SELECT value FROM json_each(:ids));

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
FROM json_each(:rows) AS j
JOIN deliveries AS d ON d.id = (
    SELECT id FROM deliveries
    WHERE endpoint_id = j.value ->> 'endpoint_id' AND lane = j.value ->> 'lane'
      AND status = 'pending'
    ORDER BY id LIMIT 1)
JOIN events AS ev ON ev.seq = d.event_seq
JOIN endpoints AS e ON e.id = d.endpoint_id
JOIN apps AS a ON a.id = d.app_id;

-- insert_attempts --
-- A delivery deleted while in flight (its endpoint or app removed) has no row to log to.
INSERT INTO attempts (delivery_id, attempted_at, outcome, status_code, latency_ms,
                      response_excerpt, error)
SELECT j.value ->> 'delivery_id', j.value ->> 'attempted_at', j.value ->> 'outcome',
       j.value ->> 'status_code', j.value ->> 'latency_ms', j.value ->> 'response_excerpt',
       j.value ->> 'error'
FROM json_each(:rows) AS j
WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = j.value ->> 'delivery_id');

-- finish_deliveries --
UPDATE deliveries
SET status = j.value ->> 'status', attempts = attempts + 1, next_attempt_at = NULL,
    last_status_code = j.value ->> 'status_code', last_error = j.value ->> 'error',
    updated_at = :now
FROM json_each(:rows) AS j
WHERE deliveries.id = j.value ->> 'delivery_id' AND deliveries.status = 'pending'
RETURNING deliveries.id, deliveries.endpoint_id, deliveries.lane;

-- reschedule_deliveries --
UPDATE deliveries
SET attempts = attempts + (j.value ->> 'counted'), next_attempt_at = j.value ->> 'retry_at',
    last_status_code = j.value ->> 'status_code', last_error = j.value ->> 'error',
    updated_at = :now
FROM json_each(:rows) AS j
WHERE deliveries.id = j.value ->> 'delivery_id' AND deliveries.status = 'pending';

-- continue_lanes --
-- A lane whose head was just answered keeps its lease for its next delivery, which goes
-- out at once instead of after a release and a new claim. Only where a claim would give
-- the lane out too: its endpoint enabled, not paused, neither paced nor rate-limited
-- (their lanes go through claims, which space them and keep the limit's state under the
-- claim lock), its next head due (a retry waits for its time), and the endpoint, its
-- app and the app's fair share of :slots within bounds, counted over every engine's
-- leases as a claim counts them. This lane is one of those leases already: keeping it
-- never adds to them, so no race with a claim can pass a cap.
-- A lane keeps its lease for :max_run deliveries in a row at most, then goes back to
-- the claims: the other lanes of a busy endpoint, and other apps, get their turn.
-- One row write, of columns no index holds (so a HOT update on PostgreSQL): the lane's
-- next_attempt_at stays at its first lease's end, which claims skip while it is leased.
WITH wanted AS (
    SELECT j.value ->> 'endpoint_id' AS endpoint_id, j.value ->> 'lane' AS lane,
           j.value ->> 'count' AS count
    FROM json_each(:rows) AS j
    WHERE j.value ->> 'run' < :max_run
), leased AS (
    SELECT l.endpoint_id, e.app_id, COUNT(*) AS n
    FROM lanes AS l
    JOIN endpoints AS e ON e.id = l.endpoint_id
    WHERE l.lease_owner IS NOT NULL AND l.lease_until > :now  -- lanes_leased
    GROUP BY l.endpoint_id, e.app_id
), app_leased AS (
    SELECT app_id, SUM(n) AS n FROM leased GROUP BY app_id
), share AS (
    SELECT MAX(1, :slots / MAX(1, COUNT(*))) AS n FROM app_leased
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
      AND COALESCE(b.n, 0) <= MIN(COALESCE(e.max_in_flight, :default_cap), :app_cap)
      AND COALESCE(ab.n, 0) <= MIN(:app_cap, share.n)
      AND (SELECT d.next_attempt_at FROM deliveries AS d
           WHERE d.endpoint_id = w.endpoint_id AND d.lane = w.lane AND d.status = 'pending'
           ORDER BY d.id LIMIT 1) <= :now
    ORDER BY w.endpoint_id, w.lane
    LIMIT :limit
)
UPDATE lanes
SET pending = lanes.pending - kept.count,
    lease_until = :now + MIN(kept.timeout, :max_timeout) + :margin
FROM kept
WHERE lanes.endpoint_id = kept.endpoint_id AND lanes.lane = kept.lane
RETURNING lanes.endpoint_id, lanes.lane;

-- drop_finished_lanes --
-- Lanes whose last pending deliveries just finished go, in one write. One that another
-- engine holds stays: its holder gives it back.
DELETE FROM lanes
WHERE (endpoint_id, lane) IN (
        SELECT j.value ->> 'endpoint_id', j.value ->> 'lane' FROM json_each(:rows) AS j)
  AND pending <= (
        SELECT j.value ->> 'count' FROM json_each(:rows) AS j
        WHERE j.value ->> 'endpoint_id' = lanes.endpoint_id AND j.value ->> 'lane' = lanes.lane)
  AND (lease_owner IS NULL OR lease_owner = :owner);

-- settle_lanes --
-- The other lanes of a record, in one row write each: their finished deliveries off
-- their count and, where this engine holds them, their lease given back, due again now
-- (the next head) or when the head that failed is retried.
UPDATE lanes
SET pending = pending - (j.value ->> 'count'),
    lease_owner = CASE WHEN lease_owner = :owner THEN NULL ELSE lease_owner END,
    lease_until = CASE WHEN lease_owner = :owner THEN NULL ELSE lease_until END,
    next_attempt_at = CASE WHEN lease_owner = :owner THEN COALESCE(j.value ->> 'retry_at', :now)
                           ELSE next_attempt_at END
FROM json_each(:rows) AS j
WHERE lanes.endpoint_id = j.value ->> 'endpoint_id' AND lanes.lane = j.value ->> 'lane'
  AND (j.value ->> 'count' > 0 OR lanes.lease_owner = :owner);

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
  AND (:endpoint_id IS NULL OR d.endpoint_id = :endpoint_id)
  AND (:user_id IS NULL OR d.user_id = :user_id)
  AND (:event_type IS NULL OR d.event_type = :event_type)
  AND (:status IS NULL OR d.status = :status)
  AND (:since IS NULL OR d.created_at >= :since)
  AND (:until IS NULL OR d.created_at < :until)
  AND (:before IS NULL OR d.id < :before)
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
    WHERE a.delivery_id IN (SELECT value FROM json_each(:ids))) AS ranked
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
        WHERE a.delivery_id IN (SELECT value FROM json_each(:ids))) AS ranked
    WHERE from_first > :head AND from_last > :tail);

-- get_full_events_by_ids --
SELECT * FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- clear_lanes --
DELETE FROM lanes
WHERE (endpoint_id, lane) IN (
    SELECT j.value ->> 'endpoint_id', j.value ->> 'lane' FROM json_each(:rows) AS j);

-- notify_published --
-- Not run as SQL: the connector wakes the listening processes after the commit
-- (hookline/store/wakeup.py), as pg_notify does in PostgreSQL.
SELECT 1;

-- lock_claims --
-- SQLite has one writer at a time: claims are serialised already.
SELECT 1;

-- lock_lanes --
-- SQLite has one writer at a time: nothing else holds the lanes.
SELECT 1;

-- vacuum_lanes --
-- SQLite reuses the space of deleted and rewritten rows by itself (Store.vacuum_lanes
-- does not run this).
SELECT 1;

-- prune_events --
-- A small batch of events created before :before none of whose deliveries is pending;
-- their deliveries and attempts go with them (ON DELETE CASCADE). Only the event's own
-- time counts: a retry or a recover touches its deliveries, but never keeps them longer.
DELETE FROM events
WHERE seq IN (
    SELECT ev.seq FROM events AS ev
    WHERE ev.created_at < :before
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS d
          WHERE d.event_seq = ev.seq AND d.status = 'pending')
    ORDER BY ev.created_at
    LIMIT :batch)
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
WHERE id IN (SELECT value FROM json_each(:ids)) AND status <> 'pending'
RETURNING endpoint_id, lane;

-- failed_delivery_ids --
SELECT id FROM deliveries
WHERE status = 'failed' AND id > :after
  AND (:app_id IS NULL OR app_id = :app_id)
  AND (:endpoint_id IS NULL OR endpoint_id = :endpoint_id)
  AND (:since IS NULL OR created_at >= :since)
ORDER BY id
LIMIT :limit;

-- count_failed_deliveries --
SELECT COUNT(*) AS n FROM deliveries
WHERE status = 'failed'
  AND (:app_id IS NULL OR app_id = :app_id)
  AND (:endpoint_id IS NULL OR endpoint_id = :endpoint_id)
  AND (:since IS NULL OR created_at >= :since);

-- delivery_timeline --
-- Deliveries per time bucket and status, for the dashboard's chart. Only the newest
-- :limit deliveries of the app are looked at (walking its index backwards), so a busy
-- app costs a bounded read; the chart then covers less than the whole window.
SELECT CAST((created_at - :since) / :bucket AS INTEGER) AS bucket, status, COUNT(*) AS n
FROM (
    SELECT created_at, status FROM deliveries
    WHERE app_id = :app_id AND (:endpoint_id IS NULL OR endpoint_id = :endpoint_id)
    ORDER BY id DESC
    LIMIT :limit) AS recent
WHERE created_at >= :since
GROUP BY bucket, status;

-- Operator and app surface (below): apps and their keys, endpoint changes, retries and
-- recovery, statistics, endpoint health.

-- rename_app --
UPDATE apps SET name = :name WHERE id = :id RETURNING *;

-- lock_lanes_of_app --
-- Before a delete, the lanes it will remove (PostgreSQL locks them here; SQLite's
-- one writer holds everything already).
SELECT 1 FROM lanes
WHERE endpoint_id IN (SELECT id FROM endpoints WHERE app_id = :id)
ORDER BY endpoint_id, lane;

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
SET verification_key = j.value ->> 'verification_key',
    next_verification_key = j.value ->> 'next_verification_key'
FROM json_each(:rows) AS j
WHERE apps.id = j.value ->> 'id';

-- endpoint_secrets_after --
-- The endpoints that hold sealed values, a page at a time (rotate-master-key).
SELECT id, headers, client_key, verification_key, next_verification_key FROM endpoints
WHERE id > :after
  AND (headers IS NOT NULL OR client_key IS NOT NULL OR verification_key IS NOT NULL)
ORDER BY id LIMIT :limit;

-- store_endpoint_secrets --
UPDATE endpoints
SET headers = j.value ->> 'headers', client_key = j.value ->> 'client_key',
    verification_key = j.value ->> 'verification_key',
    next_verification_key = j.value ->> 'next_verification_key'
FROM json_each(:rows) AS j
WHERE endpoints.id = j.value ->> 'id';

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
SELECT 1 FROM lanes WHERE endpoint_id = :id ORDER BY endpoint_id, lane;

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
SELECT COALESCE(SUM(pending), 0) AS pending FROM lanes WHERE endpoint_id = :endpoint_id;

-- track_endpoints --
-- What a batch of attempts tells about their endpoints (see Store.record): a 2xx clears
-- failing_since, stamps last_success_at and takes the pace back towards unpaced (the
-- rate it allows grows by one request a second); a failure starts failing_since; a
-- "slow down" pauses the endpoint for what it asked or its pace, and doubles the pace
-- unless the request was sent before its last slow-down (one burst slows it once).
-- Only rows that change are written: last_success_at at most once a :stamp seconds.
UPDATE endpoints
SET last_success_at = COALESCE(MAX(last_success_at, j.value ->> 'answered_at'),
                               last_success_at, j.value ->> 'answered_at'),
    failing_since = CASE WHEN j.value ->> 'answered_at' IS NOT NULL THEN NULL
                         ELSE COALESCE(failing_since, j.value ->> 'failed_at') END,
    pace = CASE
        WHEN j.value ->> 'throttle_for' IS NULL THEN
            CASE WHEN j.value ->> 'answered_at' IS NULL OR pace = 0 THEN pace
                 WHEN pace / (1 + pace) < :pace_min THEN 0
                 ELSE pace / (1 + pace) END
        WHEN slowed_at IS NOT NULL AND j.value ->> 'sent_at' < slowed_at THEN MAX(pace, :pace_min)
        ELSE MIN(MAX(pace * 2, :pace_min), :pace_max) END,
    slowed_at = CASE
        WHEN j.value ->> 'throttle_for' IS NULL THEN slowed_at
        WHEN slowed_at IS NOT NULL AND j.value ->> 'sent_at' < slowed_at THEN slowed_at
        ELSE :now END,
    pause_until = CASE
        WHEN j.value ->> 'throttle_for' IS NULL THEN pause_until
        ELSE MAX(COALESCE(pause_until, 0),
                 :now + MAX(j.value ->> 'throttle_for', MIN(MAX(pace * 2, :pace_min), :pace_max)))
        END
FROM json_each(:rows) AS j
WHERE endpoints.id = j.value ->> 'endpoint_id'
  AND (j.value ->> 'throttle_for' IS NOT NULL
       OR (j.value ->> 'answered_at' IS NOT NULL
           AND (failing_since IS NOT NULL OR pace > 0 OR last_success_at IS NULL
                OR last_success_at < (j.value ->> 'answered_at') - :stamp))
       OR (j.value ->> 'answered_at' IS NULL AND j.value ->> 'failed_at' IS NOT NULL
           AND failing_since IS NULL));

-- endpoints_answered --
SELECT id, last_success_at FROM endpoints WHERE id IN (SELECT value FROM json_each(:ids));

-- disable_failing_endpoints --
-- Endpoints failing since before :before. failing_since stays set: it is what marks an
-- endpoint as disabled by its health (and so probed), not by the operator or a 410.
UPDATE endpoints SET enabled = 0, disabled_reason = :reason, updated_at = :now
WHERE enabled = 1 AND failing_since IS NOT NULL AND failing_since <= :before
RETURNING id, app_id, url, failing_since, operational;

-- endpoints_to_probe --
-- Those probed longest ago (or never) first; mark_probed then moves them to the back.
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
LIMIT :limit;

-- mark_probed --
UPDATE endpoints SET probed_at = :now
WHERE id IN (SELECT value FROM json_each(:ids));

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
WHERE operational = 1 AND enabled = 1 AND app_id IN (SELECT value FROM json_each(:ids));

-- endpoints_recovering --
-- Of these endpoints (just answered 2xx), the enabled ones failing since :before or
-- earlier whose app has an operational endpoint: their failure is over.
SELECT e.id, e.app_id, e.url, e.failing_since FROM endpoints AS e
WHERE e.id IN (SELECT value FROM json_each(:ids))
  AND e.failing_since IS NOT NULL AND e.failing_since <= :before
  AND e.enabled = 1 AND e.operational = 0
  AND EXISTS (SELECT 1 FROM endpoints AS o
              WHERE o.app_id = e.app_id AND o.operational = 1 AND o.enabled = 1);
