-- Calls placed by the SIP/Asterisk plugin. A row is written before the Originate is sent, and every replica
-- connected to Asterisk fills in the AMI events it sees, so any replica's status check reads the same facts
-- and a call always reaches a final state (see api-server/src/plugins/sip/call.rs).
CREATE TABLE sip_calls (
    channel_id   TEXT PRIMARY KEY,           -- the ChannelId forced on the Originate = the job's provider id
    job_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    deadline_at  BIGINT NOT NULL,
    uncertain    BIGINT NOT NULL DEFAULT 0,  -- 1: the Originate's answer was lost
    answered_at  BIGINT,
    ended_at     BIGINT,
    hangup_cause TEXT,
    outcome      TEXT,                       -- NULL until known: 'success' or 'failed'
    error        TEXT,
    pages        BIGINT,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX sip_calls_job ON sip_calls (job_id);
