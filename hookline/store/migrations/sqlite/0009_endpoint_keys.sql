-- An endpoint's own verification key, overriding its app's, with the same rotation
-- (next key, switch time); sealed like the app's. NULL: the app's key signs.
ALTER TABLE endpoints ADD COLUMN verification_key TEXT;
ALTER TABLE endpoints ADD COLUMN next_verification_key TEXT;
ALTER TABLE endpoints ADD COLUMN key_switch_at REAL;
