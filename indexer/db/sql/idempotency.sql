-- Idempotency-Key records of POST /v1/backfill.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- lock_and_find_idempotency_key(workspace_id, key) --
-- Only one request per (workspace, key) is handled at a time (`locked` false: another
-- holds it), and the stored first response of the key, if any, with whether it has
-- expired. One statement, one round trip: its snapshot is taken before the lock, so a
-- holder that commits in between is not seen; the claim then finds its key taken and
-- the request is refused as in flight (409, retry), never created twice.
SELECT pg_try_advisory_xact_lock(hashtextextended('logfill.idempotency/' || $1::uuid::text || '/' || $2, 0)) AS locked,
       k.fingerprint, k.response_status, k.response_headers, k.response_body,
       k.expires_at <= now() AS expired
FROM (SELECT 1) AS one
LEFT JOIN idempotency_keys k ON k.workspace_id = $1 AND k.idempotency_key = $2;

-- forget_expired_idempotency_key(workspace_id, key) --
-- An expired key is free again.
DELETE FROM idempotency_keys
WHERE workspace_id = $1 AND idempotency_key = $2 AND expires_at <= now();

-- claim_idempotency_key(workspace_id, key, fingerprint, response_status, response_headers, response_body, backfill_request_id, ttl_seconds) --
-- Record the key with its response, in the transaction that created the request.
INSERT INTO idempotency_keys (workspace_id, idempotency_key, fingerprint, response_status,
                              response_headers, response_body, backfill_request_id, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING 1;

-- purge_expired_idempotency_keys --
-- Forget Idempotency-Key records past their expiry.
DELETE FROM idempotency_keys WHERE expires_at < now();
