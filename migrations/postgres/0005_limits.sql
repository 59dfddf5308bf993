-- Per-key spending limits and rate limits (as migrations/0005_limits.sql).
ALTER TABLE api_keys ADD COLUMN limit_total_nanos BIGINT;
ALTER TABLE api_keys ADD COLUMN limit_daily_nanos BIGINT;
ALTER TABLE api_keys ADD COLUMN limit_monthly_nanos BIGINT;
ALTER TABLE api_keys ADD COLUMN requests_per_minute BIGINT;
ALTER TABLE api_keys ADD COLUMN tokens_per_minute BIGINT;
ALTER TABLE accounts ADD COLUMN requests_per_minute BIGINT;
ALTER TABLE accounts ADD COLUMN tokens_per_minute BIGINT;
