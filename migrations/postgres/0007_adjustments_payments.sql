-- Ledger adjustments and card payments through Stripe Checkout (docs/payments.md).
-- The same tables as the SQLite migration; see its comments.

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('trial', 'topup', 'usage', 'adjustment'));

ALTER TABLE accounts ADD COLUMN disabled_at TEXT;

CREATE TABLE stripe_checkouts (
    session_id        TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    credited_nanos    BIGINT NOT NULL,
    fee_nanos         BIGINT NOT NULL,
    fee_basis_points  BIGINT NOT NULL,
    created_at        TEXT NOT NULL
);

CREATE TABLE stripe_payments (
    session_id      TEXT PRIMARY KEY REFERENCES stripe_checkouts(session_id),
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    payment_intent  TEXT UNIQUE,
    topup_id        TEXT NOT NULL,
    credited_nanos  BIGINT NOT NULL,
    taken_nanos     BIGINT NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);

CREATE TABLE stripe_events (
    event_id        TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    session_id      TEXT,
    -- the event's object: the session, the charge refunded or the dispute
    object_id       TEXT,
    payment_intent  TEXT,
    account_id      TEXT,
    reported_cents  BIGINT NOT NULL DEFAULT 0,
    amount_nanos    BIGINT NOT NULL DEFAULT 0,
    outcome         TEXT NOT NULL,
    created         BIGINT NOT NULL,
    received_at     TEXT NOT NULL
);

CREATE INDEX stripe_events_by_intent ON stripe_events(payment_intent);

-- Events are never removed (their outcome is written in the transaction that claims them).
CREATE TRIGGER stripe_events_no_delete BEFORE DELETE ON stripe_events
    FOR EACH ROW EXECUTE FUNCTION gammainfra_append_only();
CREATE TRIGGER stripe_events_no_truncate BEFORE TRUNCATE ON stripe_events
    FOR EACH STATEMENT EXECUTE FUNCTION gammainfra_append_only();
