-- PostgreSQL: accounts, API keys, the append-only ledger and top-up records, the same
-- tables and rules as the SQLite schema (migrations/0001_init.sql), in PostgreSQL's
-- dialect. Money is BIGINT nano-dollars (1e-9 USD); no floating point anywhere. Times
-- are RFC 3339 UTC text, as in SQLite, so that both backends compare them alike.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    -- trimmed and lower-cased: one trial per email
    email       TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    -- SHA-256 of the key, hex; the key itself is never stored
    key_hash        TEXT NOT NULL UNIQUE,
    -- first characters of the key, to recognise it in listings
    key_prefix      TEXT NOT NULL,
    name            TEXT,
    default_region  TEXT,
    created_at      TEXT NOT NULL,
    revoked_at      TEXT
);

CREATE TABLE ledger_entries (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL CHECK (kind IN ('trial', 'topup', 'usage')),
    amount_nanos  BIGINT NOT NULL,
    request_id    TEXT,
    key_id        TEXT,
    model         TEXT,
    endpoint      TEXT,
    input_tokens        BIGINT,
    output_tokens       BIGINT,
    cache_read_tokens   BIGINT,
    cache_write_tokens  BIGINT,
    note          TEXT,
    created_at    TEXT NOT NULL
);

-- The trial is granted once per account (and accounts are unique per email).
CREATE UNIQUE INDEX ledger_one_trial ON ledger_entries(account_id) WHERE kind = 'trial';
-- A request is charged at most once.
CREATE UNIQUE INDEX ledger_usage_once ON ledger_entries(request_id) WHERE kind = 'usage';
CREATE INDEX ledger_by_account ON ledger_entries(account_id, seq);

CREATE TABLE topups (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    credited_nanos  BIGINT NOT NULL,
    fee_nanos       BIGINT NOT NULL,
    charged_nanos   BIGINT NOT NULL,
    fee_basis_points BIGINT NOT NULL,
    created_at      TEXT NOT NULL
);

-- Append-only: entries are never changed or removed, by UPDATE, DELETE or TRUNCATE.
CREATE FUNCTION gammainfra_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION gammainfra_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION gammainfra_append_only();
CREATE TRIGGER topups_no_update BEFORE UPDATE OR DELETE ON topups
    FOR EACH ROW EXECUTE FUNCTION gammainfra_append_only();
CREATE TRIGGER topups_no_truncate BEFORE TRUNCATE ON topups
    FOR EACH STATEMENT EXECUTE FUNCTION gammainfra_append_only();
