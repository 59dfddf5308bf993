-- Customers of the web console (docs/console.md): a password, a verified email, login
-- sessions, one-time email links, and the outbox of messages sent without SMTP.

-- argon2id in the PHC string format; NULL for accounts made by an operator until their
-- customer sets one through a password reset.
ALTER TABLE accounts ADD COLUMN password_hash TEXT;
-- When the customer proved the email is theirs (a verification or reset link). Accounts
-- an operator makes are not marked: their trial was granted when they were made.
ALTER TABLE accounts ADD COLUMN email_verified_at TEXT;

-- Login sessions. The cookie holds a random token; only its SHA-256 is stored, so the
-- table cannot be replayed. `csrf` is the token every form of the session must carry.
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX console_sessions_by_account ON console_sessions(account_id);

-- Links sent by email ('verify' or 'reset'), each usable once before it expires. Only
-- the SHA-256 of the token in the link is stored.
CREATE TABLE email_tokens (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

-- Messages the gateway sent, when no SMTP server is configured (the demo and tests):
-- the operator reads them with GET /admin/v1/outbox.
CREATE TABLE mail_outbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    to_address  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
