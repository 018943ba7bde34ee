-- Named queries of the public HTTP API (loaded with the others by indexer.queries).
-- Every query that reads or changes a customer's object filters on its workspace:
-- another workspace's ids find nothing, exactly like ids that do not exist.

-- find_api_key --
-- The workspace and rate limit behind a key's SHA-256 (revoked keys find nothing).
SELECT k.id, k.key_sha256, k.workspace_id, p.api_requests_per_minute
FROM api_keys k
JOIN workspaces w ON w.id = k.workspace_id
JOIN plans p ON p.name = w.plan
WHERE k.key_sha256 = $1 AND k.revoked_at IS NULL;

-- get_workspace --
-- A workspace as its owner sees it.
SELECT w.id, w.name, w.plan, p.backfill_enabled, p.max_backfill_blocks,
       p.api_requests_per_minute, w.credits, w.backfill_webhooks
FROM workspaces w
JOIN plans p ON p.name = w.plan
WHERE w.id = $1;

-- set_backfill_webhooks --
-- Whether backfill matches of webhook-enabled subscriptions go to their webhooks.
UPDATE workspaces SET backfill_webhooks = $2 WHERE id = $1 RETURNING id;

-- insert_subscription --
-- A new subscription; the secret is returned here and by a rotation only.
INSERT INTO subscriptions (workspace_id, chain_id, name, addresses, topics, events, event_abis,
                           webhook_url, webhook_secret, stored_events)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
          webhook_secret, webhook_disabled_at, webhook_disabled_reason, stored_events,
          created_at, updated_at;

-- get_subscription --
-- One subscription of a workspace.
SELECT id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
       webhook_secret, webhook_disabled_at, webhook_disabled_reason, stored_events,
       created_at, updated_at
FROM subscriptions
WHERE id = $1 AND workspace_id = $2;

-- lock_subscription --
-- One subscription of a workspace, locked for a read-modify-write (PATCH, rotation).
SELECT id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
       webhook_secret, webhook_disabled_at, webhook_disabled_reason, stored_events,
       created_at, updated_at, previous_webhook_secret, previous_secret_expires_at
FROM subscriptions
WHERE id = $1 AND workspace_id = $2
FOR UPDATE;

-- list_subscriptions --
-- A workspace's subscriptions, oldest first, after a keyset cursor (null: first page).
SELECT id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
       webhook_secret, webhook_disabled_at, webhook_disabled_reason, stored_events,
       created_at, updated_at
FROM subscriptions
WHERE workspace_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- update_subscription --
-- Write a subscription's new state (worked out in Python from the locked row).
UPDATE subscriptions
SET name = $3, addresses = $4, topics = $5, events = $6, event_abis = $7,
    webhook_url = $8, webhook_secret = $9, previous_webhook_secret = $10,
    previous_secret_expires_at = $11, webhook_disabled_at = $12,
    webhook_disabled_reason = $13, stored_events = $14, updated_at = now()
WHERE id = $1 AND workspace_id = $2
RETURNING id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
          webhook_secret, webhook_disabled_at, webhook_disabled_reason, stored_events,
          created_at, updated_at;

-- rotate_webhook_secret --
-- New signing secret; the old one keeps signing for `$4` seconds (receivers switch over).
UPDATE subscriptions
SET previous_webhook_secret = webhook_secret,
    previous_secret_expires_at = now() + make_interval(secs => $4),
    webhook_secret = $3,
    updated_at = now()
WHERE id = $1 AND workspace_id = $2 AND webhook_url IS NOT NULL
RETURNING id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
          webhook_secret, webhook_disabled_at, webhook_disabled_reason, stored_events,
          created_at, updated_at;

-- reset_subscription_coverage --
-- A new filter: blocks scanned with the old one say nothing about the new one.
DELETE FROM subscription_coverage WHERE subscription_id = $1;

-- delete_subscription --
-- Delete a subscription (its requests, matches and deliveries cascade).
DELETE FROM subscriptions WHERE id = $1 AND workspace_id = $2 RETURNING id;

-- subscription_exists --
-- Whether a workspace owns this subscription (list endpoints answer 404 otherwise).
SELECT chain_id, event_abis FROM subscriptions WHERE id = $1 AND workspace_id = $2;

-- list_subscription_events --
-- Stored matches of a subscription in chain order, after a keyset cursor.
SELECT m.id, m.block_number, m.log_index, m.backfill_request_id, m.created_at,
       l.block_hash, l.transaction_hash, l.transaction_index, l.address, l.topics, l.data
FROM matches m
JOIN logs l ON l.id = m.log_id
WHERE m.subscription_id = $1 AND (m.block_number, m.log_index, m.id) > ($2, $3, $4)
ORDER BY m.block_number, m.log_index, m.id
LIMIT $5;

-- backfill_context --
-- What accepting a backfill depends on: the plan, the subscription, the chain's
-- heads and the subscription's coverage (subscription columns null: unknown id).
SELECT p.backfill_enabled, p.max_backfill_blocks, s.id AS subscription_id, s.chain_id,
       s.stored_events, cs.head, cs.safe_head, cs.learned_block_range, c.covered
FROM workspaces w
JOIN plans p ON p.name = w.plan
LEFT JOIN subscriptions s ON s.id = $2 AND s.workspace_id = w.id
LEFT JOIN chain_state cs ON cs.chain_id = s.chain_id
LEFT JOIN subscription_coverage c ON c.subscription_id = s.id
WHERE w.id = $1;

-- insert_backfill --
-- A new request, queued with its cursor on its first block in scan order.
INSERT INTO backfill_requests (workspace_id, subscription_id, chain_id, from_block, to_block,
                               block_order, cursor, rescan, redeliver, labels)
VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::text,
        CASE WHEN $6::text = 'desc' THEN $5::bigint ELSE $4::bigint END, $7, $8, $9)
RETURNING id, subscription_id, chain_id, status, from_block, to_block, block_order, cursor,
          rescan, redeliver, labels, blocks_scanned, matches, new_matches, duplicate_matches,
          credits_charged, cu_spent, windows, error, estimated_start_at, estimated_finish_at,
          created_at, started_at, finished_at, updated_at,
          NULL::bigint AS remaining_blocks;

-- get_backfill --
-- One request of a workspace, with the blocks it still has to scan (null: not planned yet).
SELECT id, subscription_id, chain_id, status, from_block, to_block, block_order, cursor,
       rescan, redeliver, labels, blocks_scanned, matches, new_matches, duplicate_matches,
       credits_charged, cu_spent, windows, error, estimated_start_at, estimated_finish_at,
       created_at, started_at, finished_at, updated_at,
       (SELECT sum(upper(x) - lower(x)) FROM unnest(remaining) AS x)::bigint
           AS remaining_blocks
FROM backfill_requests
WHERE id = $1 AND workspace_id = $2;

-- list_backfills --
-- A subscription's requests, newest first, optionally of one status, after a keyset cursor.
SELECT id, subscription_id, chain_id, status, from_block, to_block, block_order, cursor,
       rescan, redeliver, labels, blocks_scanned, matches, new_matches, duplicate_matches,
       credits_charged, cu_spent, windows, error, estimated_start_at, estimated_finish_at,
       created_at, started_at, finished_at, updated_at,
       (SELECT sum(upper(x) - lower(x)) FROM unnest(remaining) AS x)::bigint
           AS remaining_blocks
FROM backfill_requests
WHERE subscription_id = $1 AND workspace_id = $2
  AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $6;

-- backfill_status --
-- The current status of a workspace's request (why a transition was refused).
SELECT status FROM backfill_requests WHERE id = $1 AND workspace_id = $2;

-- pause_backfill --
-- Owner pause: the cursor stays where it is; windows skip paused requests.
UPDATE backfill_requests
SET status = 'paused', updated_at = now()
WHERE id = $1 AND workspace_id = $2 AND status IN ('queued', 'processing', 'paused_credits')
RETURNING id;

-- resume_backfill --
-- Owner resume: back to where it was before the pause.
UPDATE backfill_requests
SET status = CASE WHEN started_at IS NULL THEN 'queued' ELSE 'processing' END,
    updated_at = now()
WHERE id = $1 AND workspace_id = $2 AND status = 'paused'
RETURNING id;

-- cancel_backfill --
-- Owner cancel: terminal, so no cursor.
UPDATE backfill_requests
SET status = 'cancelled', cursor = NULL, finished_at = now(), updated_at = now()
WHERE id = $1 AND workspace_id = $2
  AND status IN ('queued', 'processing', 'paused_credits', 'paused')
RETURNING id;

-- retry_backfill --
-- Retry a failed request from the next block it still has to scan.
UPDATE backfill_requests
SET status = 'queued', error = NULL, finished_at = NULL, updated_at = now(),
    cursor = CASE
        WHEN remaining IS NULL OR isempty(remaining) THEN
            CASE WHEN block_order = 'desc' THEN to_block ELSE from_block END
        WHEN block_order = 'desc' THEN upper(remaining) - 1
        ELSE lower(remaining) END
WHERE id = $1 AND workspace_id = $2 AND status = 'failed'
RETURNING id;

-- try_lock_idempotency_key --
-- Only one request per (workspace, key) is handled at a time; the loser answers 409.
SELECT pg_try_advisory_xact_lock(hashtextextended('logfill.idempotency/' || $1::uuid::text || '/' || $2, 0));

-- find_idempotency_key --
-- The stored first response of a key, and whether the key has expired.
SELECT fingerprint, response_status, response_headers, response_body, expires_at <= now() AS expired
FROM idempotency_keys
WHERE workspace_id = $1 AND idempotency_key = $2;

-- forget_expired_idempotency_key --
-- An expired key is free again.
DELETE FROM idempotency_keys
WHERE workspace_id = $1 AND idempotency_key = $2 AND expires_at <= now();

-- claim_idempotency_key --
-- Record the key with its response, in the transaction that created the request.
INSERT INTO idempotency_keys (workspace_id, idempotency_key, fingerprint, response_status,
                              response_headers, response_body, backfill_request_id, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING 1;

-- list_deliveries --
-- A subscription's webhook deliveries, newest first, optionally of one status.
SELECT id, subscription_id, backfill_request_id, status, event_count, first_block, attempts,
       next_attempt_at, last_attempt_at, last_status_code, last_error, delivered_at,
       created_at, seq
FROM webhook_deliveries
WHERE subscription_id = $1 AND workspace_id = $2
  AND ($3::text IS NULL OR status = $3)
  AND ($4::bigint IS NULL OR seq < $4)
ORDER BY seq DESC
LIMIT $5;

-- retry_delivery --
-- Send a dead delivery again from attempt one (the delivery job picks it up).
UPDATE webhook_deliveries
SET status = 'pending', attempts = 0, next_attempt_at = now(), leased_until = NULL
WHERE id = $1 AND workspace_id = $2 AND status = 'dead'
RETURNING id, subscription_id, backfill_request_id, status, event_count, first_block, attempts,
          next_attempt_at, last_attempt_at, last_status_code, last_error, delivered_at,
          created_at, seq;

-- delivery_status --
-- The current status of a workspace's delivery (why a retry was refused).
SELECT status FROM webhook_deliveries WHERE id = $1 AND workspace_id = $2;
