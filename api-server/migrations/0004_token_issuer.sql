-- The API key that issued a download token (NULL for tokens the worker issues to providers), so that
-- revoking a key also ends the links it handed out.
ALTER TABLE download_tokens ADD COLUMN issued_by TEXT;
CREATE INDEX download_tokens_issued_by ON download_tokens (issued_by);
