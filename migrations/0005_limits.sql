-- Per-key spending limits and rate limits (docs/billing.md#spending-limits,
-- docs/configuration.md#limits). NULL: no limit of the key's own (for rates: the
-- configured default applies).
--
-- Spending limits are nano-dollars, like every amount: the most the key may spend in
-- total, per UTC day, per UTC month. What a key has spent is not stored here: it is
-- summed from its usage entries in ledger_entries at start, so it cannot drift from
-- the ledger.
ALTER TABLE api_keys ADD COLUMN limit_total_nanos INTEGER;
ALTER TABLE api_keys ADD COLUMN limit_daily_nanos INTEGER;
ALTER TABLE api_keys ADD COLUMN limit_monthly_nanos INTEGER;
-- Rate limits: requests and tokens per minute, overriding the configured defaults.
ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER;
ALTER TABLE api_keys ADD COLUMN tokens_per_minute INTEGER;
ALTER TABLE accounts ADD COLUMN requests_per_minute INTEGER;
ALTER TABLE accounts ADD COLUMN tokens_per_minute INTEGER;
