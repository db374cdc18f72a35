-- An endpoint's own headers (custom headers, basic or bearer auth), sent with every
-- delivery to it: one JSON object {name: value}, sealed under HOOKLINE_MASTER_KEY like
-- the verification keys. NULL: none.
ALTER TABLE endpoints ADD COLUMN headers TEXT;
