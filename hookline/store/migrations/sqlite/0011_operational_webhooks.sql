-- Operational webhooks: an app's operator_url, kept as an endpoint of the app
-- (operational = 1) that gets hookline's own events about the app's other endpoints.
ALTER TABLE apps ADD COLUMN operator_url TEXT;
ALTER TABLE endpoints ADD COLUMN operational INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX endpoints_operational ON endpoints (app_id) WHERE operational = 1;
