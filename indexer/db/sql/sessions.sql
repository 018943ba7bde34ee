-- Dashboard sessions: a browser signed in with an API key.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- open_session(token_sha256, api_key_id, csrf_token, lifetime_seconds) --
-- A new session for a valid key, expiring after its lifetime.
INSERT INTO dashboard_sessions (token_sha256, api_key_id, csrf_token, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING expires_at;

-- find_session(token_sha256) --
-- The workspace, key and CSRF token behind a live session (expired sessions, and
-- sessions of revoked keys, find nothing).
SELECT s.api_key_id, s.csrf_token, s.expires_at, k.workspace_id, p.api_requests_per_minute
FROM dashboard_sessions s
JOIN api_keys k ON k.id = s.api_key_id AND k.revoked_at IS NULL
JOIN workspaces w ON w.id = k.workspace_id
JOIN plans p ON p.name = w.plan
WHERE s.token_sha256 = $1 AND s.expires_at > now();

-- close_session(token_sha256) --
-- Sign out: the session is gone for good.
DELETE FROM dashboard_sessions WHERE token_sha256 = $1;

-- delete_expired_sessions --
-- Forget sessions that can no longer be used.
DELETE FROM dashboard_sessions WHERE expires_at <= now();
