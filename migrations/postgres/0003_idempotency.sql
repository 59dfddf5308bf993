-- Idempotency keys of money movements (as migrations/0003_idempotency.sql).
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    result       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

CREATE TRIGGER idempotency_no_update BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION gammainfra_append_only();
CREATE TRIGGER idempotency_no_truncate BEFORE TRUNCATE ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION gammainfra_append_only();
