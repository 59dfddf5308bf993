-- The credit lease a usage charge was admitted under. Leases exist only on PostgreSQL
-- (several replicas sharing one ledger, docs/scaling.md); on SQLite one process owns
-- the ledger and this column stays NULL. It is here so that both backends append usage
-- with the same statement.
ALTER TABLE ledger_entries ADD COLUMN lease_id TEXT;
