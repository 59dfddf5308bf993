-- Idempotency keys of money movements (Stripe's convention): a retried top-up with the
-- same key and body answers the first result instead of crediting twice.

CREATE TABLE idempotency_keys (
    -- what the key was used for, e.g. 'topup'
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    -- SHA-256 (hex) of what the request asked for: the same key with another request is a conflict
    fingerprint  TEXT NOT NULL,
    -- the first result, as JSON
    result       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

CREATE TRIGGER idempotency_no_update BEFORE UPDATE ON idempotency_keys
BEGIN SELECT RAISE(ABORT, 'idempotency_keys is append-only'); END;
CREATE TRIGGER idempotency_no_delete BEFORE DELETE ON idempotency_keys
BEGIN SELECT RAISE(ABORT, 'idempotency_keys is append-only'); END;
