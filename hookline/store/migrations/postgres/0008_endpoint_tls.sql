-- Mutual TLS: an endpoint's client certificate (PEM, public) and its private key
-- (sealed under HOOKLINE_MASTER_KEY like the headers). NULL: no client certificate.
ALTER TABLE endpoints ADD COLUMN client_cert TEXT;
ALTER TABLE endpoints ADD COLUMN client_key TEXT;
