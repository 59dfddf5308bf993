-- Accounts, API keys, the append-only ledger and top-up records.
-- Money is INTEGER nano-dollars (1e-9 USD); no floating point anywhere.

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
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL CHECK (kind IN ('trial', 'topup', 'usage')),
    amount_nanos  INTEGER NOT NULL,
    request_id    TEXT,
    key_id        TEXT,
    model         TEXT,
    endpoint      TEXT,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    cache_read_tokens   INTEGER,
    cache_write_tokens  INTEGER,
    note          TEXT,
    created_at    TEXT NOT NULL
);

-- The trial is granted once per account (and accounts are unique per email).
CREATE UNIQUE INDEX ledger_one_trial ON ledger_entries(account_id) WHERE kind = 'trial';
-- A request is charged at most once.
CREATE UNIQUE INDEX ledger_usage_once ON ledger_entries(request_id) WHERE kind = 'usage';
CREATE INDEX ledger_by_account ON ledger_entries(account_id, seq);

-- Append-only: entries are never changed or removed.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

CREATE TABLE topups (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    credited_nanos  INTEGER NOT NULL,
    fee_nanos       INTEGER NOT NULL,
    charged_nanos   INTEGER NOT NULL,
    fee_basis_points INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);

-- Top-up records are append-only too.
CREATE TRIGGER topups_no_update BEFORE UPDATE ON topups
BEGIN SELECT RAISE(ABORT, 'topups is append-only'); END;
CREATE TRIGGER topups_no_delete BEFORE DELETE ON topups
BEGIN SELECT RAISE(ABORT, 'topups is append-only'); END;
