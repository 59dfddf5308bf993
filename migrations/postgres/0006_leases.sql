-- Credit leases: several gateway replicas share one PostgreSQL ledger, each admitting
-- requests against a slice of an account's credit that it leased from here
-- (docs/scaling.md). The rule that keeps every account at or above zero:
--
--     balance_nanos - leased_nanos >= 0     for every account, at every commit,
--
-- where `balance_nanos` is the sum of the account's ledger entries and `leased_nanos`
-- the credit that open leases hold and have not yet charged. A replica charges only
-- within its lease, and a lease is granted only from `balance - leased`.

-- The credit the ledger's entries add up to, and how much of it open leases hold.
-- `balance_nanos` is maintained by the trigger below from the ledger itself, never
-- written by the gateway; `leased_nanos` by the lease functions and that trigger.
CREATE TABLE account_credit (
    account_id     TEXT PRIMARY KEY REFERENCES accounts(id),
    balance_nanos  BIGINT NOT NULL DEFAULT 0,
    leased_nanos   BIGINT NOT NULL DEFAULT 0 CHECK (leased_nanos >= 0)
);

INSERT INTO account_credit (account_id, balance_nanos)
SELECT a.id, CAST(COALESCE(SUM(l.amount_nanos), 0) AS BIGINT)
FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id
GROUP BY a.id;

-- One lease per replica and account at a time, extended while the replica needs more
-- and renewed by its heartbeat. Outstanding: granted - used. Closed by its replica
-- (idle, or at shutdown), or by any replica once it has expired (the replica died or
-- lost the database), which returns the outstanding credit to the account.
CREATE TABLE credit_leases (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    replica_id     TEXT NOT NULL,
    granted_nanos  BIGINT NOT NULL CHECK (granted_nanos >= 0),
    -- charged under this lease, as committed usage entries
    used_nanos     BIGINT NOT NULL DEFAULT 0,
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at      TIMESTAMPTZ,
    -- what was handed back to the account when it closed, and who closed it
    returned_nanos BIGINT,
    closed_by      TEXT
);

CREATE INDEX credit_leases_open ON credit_leases(expires_at) WHERE closed_at IS NULL;
CREATE INDEX credit_leases_replica ON credit_leases(replica_id) WHERE closed_at IS NULL;

ALTER TABLE ledger_entries ADD COLUMN lease_id TEXT;

-- What each key spent per UTC day (`day` is the `YYYY-MM-DD` prefix of its usage
-- entries' `created_at`), kept by the trigger below: replicas refresh the spend of keys
-- with spending limits from here (a key's total is the sum of its days, its month the
-- sum of the month's days) without summing the ledger.
CREATE TABLE key_spend_daily (
    key_id       TEXT NOT NULL,
    day          TEXT NOT NULL,
    spent_nanos  BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

INSERT INTO key_spend_daily (key_id, day, spent_nanos)
SELECT key_id, substr(created_at, 1, 10), CAST(SUM(-amount_nanos) AS BIGINT)
FROM ledger_entries WHERE kind = 'usage' AND key_id IS NOT NULL
GROUP BY 1, 2;

-- Every insert into the ledger moves the account's balance by the inserted amounts,
-- what was charged under an open lease no longer counts as leased, and keys' daily
-- spend grows by their charges. Statement-level
-- with the inserted rows as a transition table: one update per account per batch, and
-- only rows actually inserted (a retried batch whose entries exist adds nothing).
-- Account rows are locked in ID order, so concurrent batches cannot deadlock on them.
-- (An UPDATE, not INSERT ... ON CONFLICT DO UPDATE: PostgreSQL checks the CHECK
-- constraint on the row proposed for insertion even when it conflicts.)
CREATE FUNCTION gammainfra_credit_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_credit (account_id)
    SELECT DISTINCT account_id FROM new_rows ORDER BY account_id
    ON CONFLICT (account_id) DO NOTHING;
    PERFORM 1 FROM account_credit
    WHERE account_id IN (SELECT account_id FROM new_rows)
    ORDER BY account_id FOR UPDATE;
    WITH used AS (
        SELECT lease_id, CAST(SUM(-amount_nanos) AS BIGINT) AS n
        FROM new_rows WHERE lease_id IS NOT NULL GROUP BY lease_id
    ), charged AS (
        UPDATE credit_leases l SET used_nanos = l.used_nanos + used.n
        FROM used
        WHERE l.id = used.lease_id AND l.closed_at IS NULL
        RETURNING l.account_id, used.n
    ), d AS (
        SELECT account_id, CAST(SUM(d_balance) AS BIGINT) AS b, CAST(SUM(d_leased) AS BIGINT) AS l
        FROM (
            SELECT account_id, amount_nanos AS d_balance, CAST(0 AS BIGINT) AS d_leased FROM new_rows
            UNION ALL
            SELECT account_id, 0, -n FROM charged
        ) x
        GROUP BY account_id
    )
    UPDATE account_credit c
    SET balance_nanos = c.balance_nanos + d.b, leased_nanos = c.leased_nanos + d.l
    FROM d WHERE c.account_id = d.account_id;
    -- Keys' spend per day, in key and day order (after the accounts', as everywhere).
    INSERT INTO key_spend_daily AS k (key_id, day, spent_nanos)
    SELECT key_id, substr(created_at, 1, 10), CAST(SUM(-amount_nanos) AS BIGINT)
    FROM new_rows WHERE kind = 'usage' AND key_id IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (key_id, day) DO UPDATE SET spent_nanos = k.spent_nanos + EXCLUDED.spent_nanos;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_credit AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gammainfra_credit_after_insert();

-- `account_credit.balance_nanos` follows the ledger only: nothing else may change it.
CREATE FUNCTION gammainfra_credit_balance_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance_nanos <> OLD.balance_nanos AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'account_credit.balance_nanos follows the ledger and cannot be set';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER account_credit_balance_guard BEFORE UPDATE ON account_credit
    FOR EACH ROW EXECUTE FUNCTION gammainfra_credit_balance_guard();

-- Grants a replica `need` nano-dollars or more of an account's unleased credit, in one
-- transaction: the slice is max(need, min(target, available / 4)), so that a small
-- account is shared by several replicas and a large one is not leased away at once.
-- Returns the slice granted (0 when available < need) and what stays available. The
-- lease row is created or extended (and renewed); extending a lease that was closed
-- meanwhile is an error (SQLSTATE GI001): the replica must start a new one.
CREATE FUNCTION gammainfra_lease_grant(
    p_lease TEXT, p_account TEXT, p_replica TEXT, p_need BIGINT, p_target BIGINT, p_ttl_ms BIGINT
) RETURNS TABLE (granted BIGINT, available BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    was_open BOOLEAN;
    avail BIGINT;
    slice BIGINT;
BEGIN
    -- The lease row first, then the account's: the order every writer locks them in.
    SELECT closed_at IS NULL INTO was_open FROM credit_leases WHERE id = p_lease FOR UPDATE;
    IF was_open = false THEN
        RAISE EXCEPTION 'credit lease % is closed', p_lease USING ERRCODE = 'GI001';
    END IF;
    SELECT balance_nanos - leased_nanos INTO avail
    FROM account_credit WHERE account_id = p_account FOR UPDATE;
    avail := COALESCE(avail, 0);
    IF avail <= 0 OR avail < p_need THEN
        RETURN QUERY SELECT CAST(0 AS BIGINT), GREATEST(avail, 0);
        RETURN;
    END IF;
    slice := GREATEST(p_need, LEAST(p_target, avail / 4));
    IF slice <= 0 THEN
        RETURN QUERY SELECT CAST(0 AS BIGINT), avail;
        RETURN;
    END IF;
    UPDATE account_credit SET leased_nanos = leased_nanos + slice WHERE account_id = p_account;
    INSERT INTO credit_leases (id, account_id, replica_id, granted_nanos, expires_at)
    VALUES (p_lease, p_account, p_replica, slice, now() + p_ttl_ms * INTERVAL '1 millisecond')
    ON CONFLICT (id) DO UPDATE
        SET granted_nanos = credit_leases.granted_nanos + EXCLUDED.granted_nanos,
            expires_at = EXCLUDED.expires_at;
    RETURN QUERY SELECT slice, avail - slice;
END
$$;

-- Closes the open leases `WHERE` selects (expired ones, or a dead replica's), returning
-- their outstanding credit to their accounts. Returns how many it closed. Like every
-- writer here it locks leases first, in ID order (skipping those another transaction
-- holds: they are not abandoned), then accounts, in ID order, so that it cannot
-- deadlock with the usage writers, grants and returns.
CREATE FUNCTION gammainfra_close_leases(p_replica TEXT, p_expired_only BOOLEAN, p_by TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    accts TEXT[];
    rests BIGINT[];
BEGIN
    WITH closed AS (
        UPDATE credit_leases
        SET closed_at = now(), returned_nanos = granted_nanos - used_nanos, closed_by = p_by
        WHERE id IN (
            SELECT id FROM credit_leases
            WHERE closed_at IS NULL
              AND (p_replica IS NULL OR replica_id = p_replica)
              AND (NOT p_expired_only OR expires_at < now())
            ORDER BY id
            FOR UPDATE SKIP LOCKED
        )
        RETURNING account_id, granted_nanos - used_nanos AS rest
    )
    SELECT array_agg(account_id), array_agg(rest) INTO accts, rests FROM closed;
    IF accts IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM account_credit WHERE account_id = ANY(accts) ORDER BY account_id FOR UPDATE;
    UPDATE account_credit c SET leased_nanos = c.leased_nanos - s.rest
    FROM (
        SELECT a AS account_id, CAST(SUM(r) AS BIGINT) AS rest
        FROM unnest(accts, rests) AS u(a, r) GROUP BY a
    ) s
    WHERE c.account_id = s.account_id;
    RETURN array_length(accts, 1);
END
$$;

-- A replica hands back `p_amount` of its lease's outstanding credit (it is idle, or
-- shutting down); the lease closes when nothing of it is left outstanding. Returns
-- whether it is closed now, or NULL when the lease was already closed (expired and
-- closed by another replica: its credit went back then).
CREATE FUNCTION gammainfra_lease_return(p_lease TEXT, p_amount BIGINT)
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    acct TEXT;
    now_closed BOOLEAN;
BEGIN
    UPDATE credit_leases
    SET granted_nanos = granted_nanos - p_amount,
        closed_at = CASE WHEN granted_nanos - p_amount = used_nanos THEN now() END,
        returned_nanos = CASE WHEN granted_nanos - p_amount = used_nanos THEN 0 END,
        closed_by = CASE WHEN granted_nanos - p_amount = used_nanos THEN replica_id END
    WHERE id = p_lease AND closed_at IS NULL AND granted_nanos - p_amount >= used_nanos
    RETURNING account_id, closed_at IS NOT NULL INTO acct, now_closed;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE account_credit SET leased_nanos = leased_nanos - p_amount WHERE account_id = acct;
    RETURN now_closed;
END
$$;
