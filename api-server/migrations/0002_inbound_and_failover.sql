-- Inbound faxes, download tokens, and failover across several outbound providers.

-- Received faxes. A row is committed, with its document already stored durably, before the provider's
-- callback is answered, so an inbound fax is never lost: a provider whose callback failed retries it.
CREATE TABLE inbound_faxes (
    id              TEXT PRIMARY KEY,        -- 32 hex chars
    backend         TEXT NOT NULL,           -- plugin id that received it
    provider_sid    TEXT NOT NULL,           -- provider's id; with backend it makes replays idempotent
    from_number     TEXT,                    -- PHI: never logged
    to_number       TEXT,                    -- PHI: never logged
    status          TEXT NOT NULL,
    pages           BIGINT,
    size_bytes      BIGINT,
    sha256          TEXT,
    document_key    TEXT,                    -- NULL once retention deleted the document (or none was sent)
    mailbox         TEXT,
    created_at      BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    retention_until BIGINT                   -- NULL = keep
);
CREATE UNIQUE INDEX inbound_faxes_provider ON inbound_faxes (backend, provider_sid);
CREATE INDEX inbound_faxes_received ON inbound_faxes (received_at);
CREATE INDEX inbound_faxes_retention ON inbound_faxes (retention_until) WHERE retention_until IS NOT NULL;

-- Short-lived download tokens. Only a SHA-256 of the token is stored; the token itself is shown once.
CREATE TABLE download_tokens (
    token_hash  TEXT PRIMARY KEY,
    object_kind TEXT NOT NULL,               -- 'inbound'
    object_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX download_tokens_expiry ON download_tokens (expires_at);

-- Position of the job's current provider in the outbound failover chain (0 = primary).
ALTER TABLE fax_jobs ADD COLUMN provider_index BIGINT NOT NULL DEFAULT 0;
