-- An account's residency policy (as migrations/0004_residency.sql); a key's policy is
-- its `default_region`.
ALTER TABLE accounts ADD COLUMN residency TEXT;
