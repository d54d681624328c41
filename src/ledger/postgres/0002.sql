-- cosmocast's ledger on PostgreSQL, migration 2: several workers on one campaign
-- (`run --join`), as SQLite's migration 2. A run renews its lease while it lives; a claim names
-- the run that made it, so that only the claims of a run whose lease ran out are taken for
-- interrupted.
ALTER TABLE runs ADD COLUMN host TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN lease_until TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN joined BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE contacts ADD COLUMN run_id BIGINT;
