-- Claims look up each open endpoint's due lanes, oldest first, instead of walking
-- every lane: a backlog behind an endpoint or app at its in-flight cap costs nothing.
CREATE INDEX lanes_endpoint_due ON lanes (endpoint_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
