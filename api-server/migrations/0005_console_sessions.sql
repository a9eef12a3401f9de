-- Admin console sessions. Only the SHA-256 of the session cookie is stored (as for download tokens), with
-- the API key it was opened with, so that revoking the key ends the session too; `csrf` is the token every
-- form that changes something must carry.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX console_sessions_key_id ON console_sessions (key_id);
