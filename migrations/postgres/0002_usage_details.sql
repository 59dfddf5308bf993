-- Per-request details of usage entries (as migrations/0002_usage_details.sql).
ALTER TABLE ledger_entries ADD COLUMN provider TEXT;
ALTER TABLE ledger_entries ADD COLUMN upstream_model TEXT;
ALTER TABLE ledger_entries ADD COLUMN upstream_request_id TEXT;
ALTER TABLE ledger_entries ADD COLUMN region TEXT;
ALTER TABLE ledger_entries ADD COLUMN status TEXT;

CREATE INDEX ledger_usage_by_time ON ledger_entries(account_id, created_at) WHERE kind = 'usage';
