-- Retention: pruning walks events oldest first and stops after a small batch.
CREATE INDEX events_created ON events (created_at);
