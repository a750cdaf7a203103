-- The items table. Applied at every start-up, so every statement is idempotent. Two api
-- processes starting together would race on CREATE TABLE IF NOT EXISTS (a unique violation on
-- the catalog), so a transaction-scoped advisory lock serialises them; the key is an arbitrary
-- constant reserved for this script.
BEGIN;
SELECT pg_advisory_xact_lock(7283471203);
CREATE TABLE IF NOT EXISTS items (
    id   BIGSERIAL PRIMARY KEY,
    nom  TEXT NOT NULL CHECK (char_length(nom) BETWEEN 1 AND 200),
    -- NaN sorts above every number in PostgreSQL, so `< 'Infinity'` also rules it out.
    prix DOUBLE PRECISION NOT NULL CHECK (prix >= 0 AND prix < 'Infinity')
);
COMMIT;
