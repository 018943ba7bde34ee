-- The dashboard: sessions of owners signed in with an API key, and what each
-- window did for each request (the request page charts it).

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is
-- kept. A session dies when it expires, when its owner signs out (the row is
-- deleted) and when the API key it was opened with is revoked or deleted.
CREATE TABLE dashboard_sessions (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    api_key_id   uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);

-- One row per (request, window) that advanced the request: its share of the
-- window's CU and what it scanned and found there. Written by the commit that
-- advances the request, in the same statement.
CREATE TABLE backfill_request_windows (
    backfill_request_id uuid NOT NULL REFERENCES backfill_requests (id) ON DELETE CASCADE,
    window_id           bigint NOT NULL REFERENCES windows (id) ON DELETE CASCADE,
    cu_spent            integer NOT NULL DEFAULT 0 CHECK (cu_spent >= 0),
    blocks_scanned      bigint NOT NULL DEFAULT 0 CHECK (blocks_scanned >= 0),
    matches             bigint NOT NULL DEFAULT 0 CHECK (matches >= 0),
    new_matches         bigint NOT NULL DEFAULT 0 CHECK (new_matches >= 0),
    PRIMARY KEY (backfill_request_id, window_id)
);
