-- Faxbot schema, written once for SQLite and PostgreSQL: integers are BIGINT, instants are microseconds
-- since the Unix epoch (BIGINT), flags are BIGINT 0/1, so the same statements run on both.

-- Outbound fax jobs. A row exists before 202 is returned; the queue columns make dispatch durable.
CREATE TABLE fax_jobs (
    id               TEXT PRIMARY KEY,       -- 32 hex chars
    to_number        TEXT NOT NULL,          -- PHI: never logged, returned only to authorised callers
    status           TEXT NOT NULL,          -- wire status string
    error            TEXT,
    pages            BIGINT,
    backend          TEXT NOT NULL,          -- plugin id that owns the job
    provider_sid     TEXT,                   -- provider's id once submitted
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    document_key     TEXT NOT NULL,          -- storage key of the PDF to send
    size_bytes       BIGINT NOT NULL,
    revision         TEXT NOT NULL,          -- config revision that accepted the job
    next_run_at      BIGINT,                 -- when a worker should act next; NULL = terminal or held
    lease_owner      TEXT,                   -- worker instance holding the job
    lease_until      BIGINT,                 -- lease expiry; an expired lease means the holder died
    dispatch_started BIGINT NOT NULL DEFAULT 0, -- submissions started (incremented when claimed unsent)
    attempts         BIGINT NOT NULL DEFAULT 0, -- submissions whose outcome was recorded
    idempotency_key  TEXT,                   -- "<caller>:<Idempotency-Key header>", when the client sent one
    request_hash     TEXT                    -- SHA-256 of the number and document, to detect a reused key
);
CREATE INDEX fax_jobs_due ON fax_jobs (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE UNIQUE INDEX fax_jobs_idempotency ON fax_jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- API keys. Only a keyed hash (HMAC-SHA256 with the server pepper) of the secret is stored.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    name         TEXT,
    owner        TEXT,
    scopes       TEXT NOT NULL,              -- comma-separated
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    note         TEXT
);

-- The simulated line's own state, standing in for a remote provider's database: one row per accepted
-- transmission, keyed by the idempotency key the server sends, so a repeated submission is recognised.
CREATE TABLE simulated_line_faxes (
    idempotency_key TEXT PRIMARY KEY,
    provider_sid    TEXT NOT NULL UNIQUE,
    job_id          TEXT NOT NULL,
    submitted_at    BIGINT NOT NULL,
    complete_at     BIGINT NOT NULL,
    outcome         TEXT NOT NULL,           -- SUCCESS or FAILED
    error           TEXT
);
CREATE INDEX simulated_line_faxes_job ON simulated_line_faxes (job_id);

-- Busy answers the simulated line gave per idempotency key (failure injection).
CREATE TABLE simulated_line_busy (
    idempotency_key TEXT PRIMARY KEY,
    refusals        BIGINT NOT NULL
);
