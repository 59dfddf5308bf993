-- Ledger adjustments and card payments through Stripe Checkout (docs/payments.md).
--
-- An 'adjustment' entry is credit an operator grants (positive, its reason in `note`) or
-- credit taken back because a card payment was refunded or disputed (negative). SQLite
-- cannot change a CHECK constraint, so ledger_entries is rebuilt with the same columns,
-- rows, indexes and triggers and one more allowed kind.

CREATE TABLE ledger_entries_v7 (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL CHECK (kind IN ('trial', 'topup', 'usage', 'adjustment')),
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
    created_at    TEXT NOT NULL,
    provider      TEXT,
    upstream_model TEXT,
    upstream_request_id TEXT,
    region        TEXT,
    status        TEXT,
    lease_id      TEXT
);

INSERT INTO ledger_entries_v7 (seq, account_id, kind, amount_nanos, request_id, key_id,
    model, endpoint, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    note, created_at, provider, upstream_model, upstream_request_id, region, status, lease_id)
SELECT seq, account_id, kind, amount_nanos, request_id, key_id,
    model, endpoint, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    note, created_at, provider, upstream_model, upstream_request_id, region, status, lease_id
FROM ledger_entries;

DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_v7 RENAME TO ledger_entries;

CREATE UNIQUE INDEX ledger_one_trial ON ledger_entries(account_id) WHERE kind = 'trial';
CREATE UNIQUE INDEX ledger_usage_once ON ledger_entries(request_id) WHERE kind = 'usage';
CREATE INDEX ledger_by_account ON ledger_entries(account_id, seq);
CREATE INDEX ledger_usage_by_time ON ledger_entries(account_id, created_at) WHERE kind = 'usage';

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

-- An account an operator disabled: its keys are refused until it is enabled again.
ALTER TABLE accounts ADD COLUMN disabled_at TEXT;

-- Checkout Sessions created for top-ups: what paying one credits, and its fee.
CREATE TABLE stripe_checkouts (
    session_id        TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    credited_nanos    INTEGER NOT NULL,
    fee_nanos         INTEGER NOT NULL,
    fee_basis_points  INTEGER NOT NULL,
    created_at        TEXT NOT NULL
);

-- Paid checkouts, one top-up each. The payment intent ties refunds and disputes back to
-- the payment; `taken_nanos` is the credit taken back so far (never more than credited).
CREATE TABLE stripe_payments (
    session_id      TEXT PRIMARY KEY REFERENCES stripe_checkouts(session_id),
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    payment_intent  TEXT UNIQUE,
    topup_id        TEXT NOT NULL,
    credited_nanos  INTEGER NOT NULL,
    taken_nanos     INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);

-- Every webhook event received, once per event ID, with what it did.
CREATE TABLE stripe_events (
    event_id        TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    -- 'checkout', 'refund', 'dispute' or 'other'
    kind            TEXT NOT NULL,
    session_id      TEXT,
    -- the event's object: the session, the charge refunded or the dispute
    object_id       TEXT,
    payment_intent  TEXT,
    account_id      TEXT,
    -- refund: the charge's cumulative amount refunded; dispute: its amount (cents)
    reported_cents  INTEGER NOT NULL DEFAULT 0,
    -- what the event did to the balance when it was applied (nano-dollars)
    amount_nanos    INTEGER NOT NULL DEFAULT 0,
    outcome         TEXT NOT NULL,
    created         INTEGER NOT NULL,
    received_at     TEXT NOT NULL
);

CREATE INDEX stripe_events_by_intent ON stripe_events(payment_intent);

-- Events are never removed (their outcome is written in the transaction that claims them).
CREATE TRIGGER stripe_events_no_delete BEFORE DELETE ON stripe_events
BEGIN SELECT RAISE(ABORT, 'stripe_events is never deleted from'); END;
