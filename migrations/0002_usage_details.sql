-- Per-request details of usage entries, so that a customer can audit every charge
-- (`GET /v1/usage`): who served the request, under which upstream ID, where, and how
-- it ended. All NULL on entries written before this migration and on credits.

-- `provider` as in the catalog: `bedrock`, `anthropic`, `openai`, `openai_compatible:<name>`
-- (kept apart from `endpoint`, whose `provider:upstream_id` cannot be split reliably).
ALTER TABLE ledger_entries ADD COLUMN provider TEXT;
-- The exact model ID sent upstream.
ALTER TABLE ledger_entries ADD COLUMN upstream_model TEXT;
-- The provider's ID of its answer (`chatcmpl-...`, `msg_...`), when known.
ALTER TABLE ledger_entries ADD COLUMN upstream_request_id TEXT;
-- Where it was served: the value of the X-GammaInfra-Upstream-Region response header.
ALTER TABLE ledger_entries ADD COLUMN region TEXT;
-- How the request ended: completed, client_disconnected, upstream_error, cut_short.
ALTER TABLE ledger_entries ADD COLUMN status TEXT;

-- Listing an account's usage filtered by time, and the per-day aggregates.
-- (Paging walks `ledger_by_account (account_id, seq)` from 0001.)
CREATE INDEX ledger_usage_by_time ON ledger_entries(account_id, created_at) WHERE kind = 'usage';
