-- The whole current schema, for a new database (migrations upgrade older ones; a test
-- checks both give the same result). Times are seconds since the epoch (double
-- precision); flags are integers 0/1 as in SQLite, so both backends return the same rows.

CREATE TABLE apps (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    api_key_hash      TEXT NOT NULL UNIQUE,
    verification_key  TEXT NOT NULL,
    -- Key rotation: the next key is shown first, signing switches at key_switch_at.
    next_verification_key TEXT,
    key_switch_at     DOUBLE PRECISION,
    created_at        DOUBLE PRECISION NOT NULL,
    -- Where hookline sends its operational webhooks about the app's endpoints; kept as
    -- the app's operational endpoint (endpoints.operational). NULL: none.
    operator_url      TEXT
);

CREATE TABLE installations (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, app_id)
);
-- One app's installations in page order (created_at, user_id).
CREATE INDEX installations_app ON installations (app_id, created_at, user_id);

CREATE TABLE endpoints (
    id             TEXT PRIMARY KEY,
    app_id         TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    event_types    TEXT NOT NULL,             -- JSON list, or ["*"]
    timeout        DOUBLE PRECISION NOT NULL DEFAULT 10,
    ordered        INTEGER NOT NULL DEFAULT 1, -- one at a time per user, in event order
    max_in_flight  INTEGER,                    -- NULL: the engine's default
    enabled        INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failing_since  DOUBLE PRECISION,
    created_at     DOUBLE PRECISION NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL,
    probed_at      DOUBLE PRECISION,  -- the last probe while disabled for failing
    last_success_at DOUBLE PRECISION, -- the start of the last attempt answered 2xx
    pace           DOUBLE PRECISION NOT NULL DEFAULT 0, -- seconds between requests; 0: unpaced
    pause_until    DOUBLE PRECISION,  -- no request to it before then (429/503, pace)
    slowed_at      DOUBLE PRECISION,  -- when its pace last grew
    headers        TEXT,              -- sealed JSON {name: value}, NULL: none
    client_cert    TEXT,  -- PEM, NULL: no client certificate
    client_key     TEXT,  -- sealed PEM private key of client_cert
    verification_key TEXT,       -- sealed; NULL: the app's key signs
    next_verification_key TEXT,  -- during a rotation of its own key
    key_switch_at  DOUBLE PRECISION,
    -- 1: the app's operational endpoint (its operator_url), subscribed to hookline's own
    -- event types only and never reached by fan-out; at most one per app.
    operational    INTEGER NOT NULL DEFAULT 0,
    rate_limit     DOUBLE PRECISION,  -- deliveries a second at most, across every worker; NULL: none
    rate_limit_burst INTEGER NOT NULL DEFAULT 1,  -- at once after a quiet spell
    rate_tat       DOUBLE PRECISION   -- GCRA state: when it would be idle again at the steady rate
);
CREATE INDEX endpoints_app ON endpoints (app_id);
CREATE UNIQUE INDEX endpoints_operational ON endpoints (app_id) WHERE operational = 1;

CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publication order
    id          TEXT NOT NULL UNIQUE,        -- the event_id, stable across retries
    event_type  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    data        TEXT NOT NULL,               -- JSON text, spliced into each body as is
    created_at  DOUBLE PRECISION NOT NULL,
    traceparent TEXT                         -- W3C trace context carried to deliveries
);

CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq        BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    app_id           TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- The ordering lane within the endpoint: the user for ordered endpoints,
    -- the delivery's own token otherwise. One delivery per lane is in flight.
    lane             TEXT NOT NULL,
    token            TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  DOUBLE PRECISION,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX deliveries_lane_pending ON deliveries (endpoint_id, lane, id) WHERE status = 'pending';
CREATE INDEX deliveries_app ON deliveries (app_id, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_event ON deliveries (event_seq);

-- One row per lane that has pending deliveries: the unit that is claimed and leased.
CREATE TABLE lanes (
    endpoint_id      TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    lane             TEXT NOT NULL,
    pending          INTEGER NOT NULL,
    next_attempt_at  DOUBLE PRECISION,  -- when the head is due; while leased, when its
                                        -- first lease ends (a kept lease ends later)
    lease_until      DOUBLE PRECISION,  -- a claim, held by lease_owner until then
    lease_owner      TEXT,
    PRIMARY KEY (endpoint_id, lane)
);
CREATE INDEX lanes_due ON lanes (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX lanes_endpoint_due ON lanes (endpoint_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
-- Found by holder, so extending a lease touches no index.
CREATE INDEX lanes_leased ON lanes (endpoint_id) WHERE lease_owner IS NOT NULL;
-- Few rows, rewritten often: room for HOT updates, vacuumed early and without sleeps.
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

CREATE TABLE attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at     DOUBLE PRECISION NOT NULL,
    outcome          TEXT NOT NULL,   -- delivered | retry | failed | gone
    status_code      INTEGER,
    latency_ms       DOUBLE PRECISION,
    response_excerpt TEXT,
    error            TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- Retention: pruning walks events oldest first and stops after a small batch.
CREATE INDEX events_created ON events (created_at);
