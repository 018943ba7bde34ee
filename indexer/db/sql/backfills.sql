-- Backfill requests as their owner sees them: accept, read, list, owner actions, the queue.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- backfill_context(workspace_id, subscription_id, key) --
-- What accepting a backfill depends on: the plan, the subscription, the chain's
-- heads, the subscription's coverage (subscription columns null: unknown id), the
-- log cache's fragments that may cover its filter, and the queue it would join: the
-- calls the chain's queue needed when its window last counted it, and the blocks
-- of the requests queued since (at most 200, `backfills.RECENT_QUEUE_LIMIT`, oldest
-- first), so that the cost does not grow with the queue: both are read through an
-- index, never visiting the requests counted before nor other addresses' fragments.
-- The limit is a constant, not a parameter, so that the generic plan costs what a
-- custom one does and is kept (planning this statement costs more than running it).
-- `now` is the database's clock, the new request's `created_at`. With an
-- Idempotency-Key, also what `lock_and_find_idempotency_key` answers
-- (sql/idempotency.sql: the same lock, the same race and its answer), so that a
-- fresh-key POST needs no round trip for it. The API runs this statement on its own
-- (no transaction): the lock then only tells whether another transaction holds the
-- key, and the claim made with the insert (`insert_backfill_claiming_key`) decides
-- which request gets it.
SELECT CASE WHEN $3::text IS NOT NULL THEN pg_try_advisory_xact_lock(hashtextextended(
           'logfill.idempotency/' || $1::uuid::text || '/' || $3, 0)) END AS locked,
       k.fingerprint, k.response_status, k.response_headers, k.response_body,
       k.expires_at <= now() AS expired,
       p.backfill_enabled, p.max_backfill_blocks, s.id AS subscription_id, s.chain_id,
       s.stored_events, s.addresses, s.topics, cs.head, cs.safe_head,
       cs.learned_block_range, cs.learned_logs_per_block, cs.block_seconds, c.covered,
       cs.queue_calls, q.blocks AS recent_blocks,
       fr.addresses AS fragment_addresses, fr.topics AS fragment_topics,
       fr.covered AS fragment_covered, now() AS now
FROM workspaces w
JOIN plans p ON p.name = w.plan
LEFT JOIN subscriptions s ON s.id = $2 AND s.workspace_id = w.id
LEFT JOIN chain_state cs ON cs.chain_id = s.chain_id
LEFT JOIN subscription_coverage c ON c.subscription_id = s.id
LEFT JOIN idempotency_keys k ON k.workspace_id = w.id AND k.idempotency_key = $3
LEFT JOIN LATERAL (
    SELECT array_agg(r.blocks) AS blocks
    FROM (SELECT CASE WHEN r.remaining IS NULL THEN r.to_block - r.from_block + 1
                      ELSE (SELECT coalesce(sum(upper(x) - lower(x)), 0)::bigint
                            FROM unnest(r.remaining) AS x) END AS blocks
          FROM backfill_requests r
          WHERE (k.response_status IS NULL OR k.expires_at <= now())  -- not for a replay
            AND r.chain_id = s.chain_id AND r.status IN ('queued', 'processing')
            AND r.created_at >= coalesce(cs.queue_counted_at, '-infinity')
          ORDER BY r.created_at, r.id
          LIMIT 200) AS r
) q ON true
LEFT JOIN LATERAL (
    SELECT array_agg(f.address) AS addresses, array_agg(f.topics) AS topics,
           array_agg(f.covered) AS covered
    FROM log_fragments f
    WHERE (k.response_status IS NULL OR k.expires_at <= now()) AND f.chain_id = s.chain_id
      AND f.address = ANY ('*'::text
                           || ARRAY(SELECT '0x' || encode(a, 'hex') FROM unnest(s.addresses) AS a))
) fr ON true
WHERE w.id = $1;

-- insert_backfill(id, workspace_id, subscription_id, chain_id, from_block, to_block, block_order, rescan, redeliver, labels, estimated_start_at, estimated_finish_at, created_at, follow) --
-- A new request, queued with its cursor on its first block in scan order, and when it
-- is expected to start and finish behind the queue ahead of it. Its id and
-- `created_at` (the database's `now()`, read with its context) are given, so the
-- caller knows the whole row without reading it back (`backfills.new_backfill`).
INSERT INTO backfill_requests (id, workspace_id, subscription_id, chain_id, status, from_block,
                               to_block, block_order, cursor, rescan, redeliver, labels,
                               estimated_start_at, estimated_finish_at, created_at, updated_at,
                               follow)
VALUES ($1, $2, $3, $4, 'queued', $5::bigint, $6::bigint, $7::text,
        CASE WHEN $7::text = 'desc' THEN $6::bigint ELSE $5::bigint END, $8, $9, $10, $11, $12,
        $13, $13, $14)
RETURNING id;

-- insert_backfill_claiming_key(id, workspace_id, subscription_id, chain_id, from_block, to_block, block_order, rescan, redeliver, labels, estimated_start_at, estimated_finish_at, created_at, key, fingerprint, response_status, response_headers, response_body, ttl_seconds, follow) --
-- `insert_backfill` and the Idempotency-Key's claim with the response (the 202 that
-- names the request) in one statement, so one transaction without BEGIN and COMMIT:
-- both rows exist or neither does. The key is claimed if nobody holds it, or over an
-- expired record (forgotten: claimed anew, with a new lifetime). A key another
-- request holds inserts nothing and answers no row (409 in flight): a concurrent
-- claim of the same key waits for that one's statement, then finds it taken.
WITH claim AS (
    INSERT INTO idempotency_keys AS k (workspace_id, idempotency_key, fingerprint,
                                       response_status, response_headers, response_body,
                                       backfill_request_id, expires_at)
    VALUES ($2, $14, $15, $16, $17, $18, $1, now() + make_interval(secs => $19))
    ON CONFLICT (workspace_id, idempotency_key) DO UPDATE
    SET fingerprint = excluded.fingerprint, response_status = excluded.response_status,
        response_headers = excluded.response_headers, response_body = excluded.response_body,
        backfill_request_id = excluded.backfill_request_id, created_at = now(),
        expires_at = excluded.expires_at
    WHERE k.expires_at <= now()
    RETURNING 1
)
INSERT INTO backfill_requests (id, workspace_id, subscription_id, chain_id, status, from_block,
                               to_block, block_order, cursor, rescan, redeliver, labels,
                               estimated_start_at, estimated_finish_at, created_at, updated_at,
                               follow)
SELECT $1::uuid, $2::uuid, $3::uuid, $4::bigint, 'queued', $5::bigint, $6::bigint, $7::text,
       CASE WHEN $7::text = 'desc' THEN $6::bigint ELSE $5::bigint END, $8::boolean,
       $9::boolean, $10::jsonb, $11::timestamptz, $12::timestamptz, $13::timestamptz,
       $13::timestamptz, $20::boolean
FROM claim
RETURNING id;

-- get_backfill(backfill_id, workspace_id) --
-- One request of a workspace, with the blocks it still has to scan (null: not planned
-- yet); a follow request's lag behind the chain's safe head, in blocks and (at the
-- chain's seconds per block) in seconds.
SELECT id, subscription_id, chain_id, status, from_block, to_block, block_order, cursor,
       rescan, redeliver, labels, blocks_scanned, matches, new_matches, duplicate_matches,
       matches_removed, credits_charged, cu_spent, windows, error, estimated_start_at, estimated_finish_at,
       last_transient_error, last_transient_error_at, blocked_reason,
       created_at, started_at, finished_at, updated_at,
       (SELECT sum(upper(x) - lower(x)) FROM unnest(remaining) AS x)::bigint
           AS remaining_blocks,
       follow, lag.blocks AS lag_blocks, lag.blocks * cs.block_seconds AS lag_seconds
FROM backfill_requests
LEFT JOIN LATERAL (SELECT c.safe_head, c.block_seconds FROM chain_state c
                   WHERE c.chain_id = backfill_requests.chain_id) cs ON true
LEFT JOIN LATERAL (SELECT greatest(0, cs.safe_head - cursor + 1) AS blocks
                   WHERE follow AND cursor IS NOT NULL AND status <> 'paused') lag ON true
WHERE id = $1 AND workspace_id = $2;

-- list_backfills(subscription_id, workspace_id, status, after_created_at, after_id, limit) --
-- A subscription's requests, newest first, optionally of one status, after a keyset cursor.
SELECT id, subscription_id, chain_id, status, from_block, to_block, block_order, cursor,
       rescan, redeliver, labels, blocks_scanned, matches, new_matches, duplicate_matches,
       matches_removed, credits_charged, cu_spent, windows, error, estimated_start_at, estimated_finish_at,
       last_transient_error, last_transient_error_at, blocked_reason,
       created_at, started_at, finished_at, updated_at,
       (SELECT sum(upper(x) - lower(x)) FROM unnest(remaining) AS x)::bigint
           AS remaining_blocks,
       follow, lag.blocks AS lag_blocks, lag.blocks * cs.block_seconds AS lag_seconds
FROM backfill_requests
LEFT JOIN LATERAL (SELECT c.safe_head, c.block_seconds FROM chain_state c
                   WHERE c.chain_id = backfill_requests.chain_id) cs ON true
LEFT JOIN LATERAL (SELECT greatest(0, cs.safe_head - cursor + 1) AS blocks
                   WHERE follow AND cursor IS NOT NULL AND status <> 'paused') lag ON true
WHERE subscription_id = $1 AND workspace_id = $2
  AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $6;

-- backfill_status(backfill_id, workspace_id) --
-- The current status of a workspace's request (why a transition was refused).
SELECT status FROM backfill_requests WHERE id = $1 AND workspace_id = $2;

-- pause_backfill(backfill_id, workspace_id) --
-- Owner pause: the cursor stays where it is; windows skip paused requests.
UPDATE backfill_requests
SET status = 'paused', blocked_reason = NULL, updated_at = now()
WHERE id = $1 AND workspace_id = $2
  AND status IN ('queued', 'processing', 'following', 'paused_credits', 'blocked')
RETURNING id;

-- backfill_rules(backfill_id, workspace_id) --
-- What a request needs to run (its workspace's plan, its subscription's stored
-- events), checked before an owner resumes or retries it.
SELECT p.backfill_enabled, s.stored_events
FROM backfill_requests r
JOIN workspaces w ON w.id = r.workspace_id
JOIN plans p ON p.name = w.plan
JOIN subscriptions s ON s.id = r.subscription_id
WHERE r.id = $1 AND r.workspace_id = $2;

-- resume_backfill(backfill_id, workspace_id) --
-- Owner resume: back to where it was before the pause.
UPDATE backfill_requests
SET status = CASE WHEN started_at IS NULL THEN 'queued' ELSE 'processing' END,
    updated_at = now()
WHERE id = $1 AND workspace_id = $2 AND status = 'paused'
RETURNING id;

-- cancel_backfill(backfill_id, workspace_id) --
-- Owner cancel: terminal, so no cursor.
UPDATE backfill_requests
SET status = 'cancelled', cursor = NULL, blocked_reason = NULL, finished_at = now(),
    updated_at = now()
WHERE id = $1 AND workspace_id = $2
  AND status IN ('queued', 'processing', 'following', 'paused_credits', 'paused', 'blocked')
RETURNING id;

-- retry_backfill(backfill_id, workspace_id) --
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

-- runnable_queue(chain_id) --
-- A chain's runnable requests in FIFO order with the blocks each still has to scan.
SELECT r.id,
       (SELECT coalesce(sum(upper(x) - lower(x)), 0)::bigint
        FROM unnest(coalesce(r.remaining,
                             int8multirange(int8range(r.from_block, r.to_block, '[]')))) AS x)
           AS blocks
FROM backfill_requests r
WHERE r.chain_id = $1 AND r.status IN ('queued', 'processing')
ORDER BY r.created_at, r.id;

-- recent_backfills(workspace_id, limit) --
-- A workspace's newest requests across its subscriptions (the dashboard's home).
SELECT r.id, r.subscription_id, s.name AS subscription_name, r.chain_id, r.status,
       r.from_block, r.to_block, r.block_order, r.cursor, r.blocks_scanned, r.matches,
       r.new_matches, r.credits_charged, r.created_at, r.finished_at, r.labels,
       (SELECT sum(upper(x) - lower(x)) FROM unnest(r.remaining) AS x)::bigint
           AS remaining_blocks
FROM backfill_requests r
JOIN subscriptions s ON s.id = r.subscription_id
WHERE r.workspace_id = $1
ORDER BY r.created_at DESC, r.id DESC
LIMIT $2;

-- count_backfills_by_status(workspace_id) --
-- How many requests of a workspace are in each status.
SELECT status, count(*) AS requests FROM backfill_requests WHERE workspace_id = $1 GROUP BY status;

-- backfill_windows(backfill_id, workspace_id, limit) --
-- The windows that advanced a request, oldest first: its share and the window's totals.
SELECT w.id AS window_id, w.started_at, w.finished_at, w.budget_cu, w.cu_spent AS window_cu,
       w.requests_served, rw.cu_spent, rw.blocks_scanned, rw.matches, rw.new_matches
FROM backfill_request_windows rw
JOIN backfill_requests r ON r.id = rw.backfill_request_id
JOIN windows w ON w.id = rw.window_id
WHERE rw.backfill_request_id = $1 AND r.workspace_id = $2
ORDER BY w.started_at DESC
LIMIT $3;
