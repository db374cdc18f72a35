-- The W3C traceparent an event was published with (or its publish span's, when hookline
-- traces): each delivery of it carries one on, so a trace goes from publisher to receiver.
-- NULL: none was given, and hookline does not trace.
ALTER TABLE events ADD COLUMN traceparent TEXT;
