-- One window of one chain: the lease, heads, learned span, runnable requests, audit row, ETA.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- take_window_lease(chain_id, worker, lease_seconds, tick_seconds) --
-- Become the chain's window leader: free lease, expired lease, or our own once
-- nine tenths of a tick ($4 seconds) have passed since our last window started (a
-- worker restarted under the same name takes over without waiting for its lease to
-- run out). Not a whole tick: the last window's start was stamped a few ms after its
-- tick fired, so the next tick would look early by those ms and lose its window
-- (windows ran every other tick); a scheduler still fires once per tick. The lease
-- runs `$3` seconds and is renewed on each commit. A new tick: its windows have
-- spent nothing yet.
INSERT INTO chain_state (chain_id, leader, lease_expires_at, window_started_at, updated_at)
VALUES ($1, $2, now() + make_interval(secs => $3), now(), now())
ON CONFLICT (chain_id) DO UPDATE
SET leader = EXCLUDED.leader,
    lease_expires_at = EXCLUDED.lease_expires_at,
    window_started_at = now(),
    window_ended_at = NULL,
    tick_spent_cu = 0,
    updated_at = now()
WHERE chain_state.leader IS NULL
   OR (chain_state.leader = EXCLUDED.leader
       AND (chain_state.window_started_at IS NULL
            OR chain_state.window_started_at + make_interval(secs => $4 * 0.9) <= now()))
   OR chain_state.lease_expires_at IS NULL
   OR chain_state.lease_expires_at <= now()
RETURNING window_started_at;

-- renew_window_lease(chain_id, worker, lease_seconds) --
-- Fencing for a commit: still the leader? Then hold the chain a while longer.
UPDATE chain_state
SET lease_expires_at = greatest(lease_expires_at, now() + make_interval(secs => $3))
WHERE chain_id = $1 AND leader = $2
RETURNING 1;

-- follow_window_lease(chain_id, worker, lease_seconds, tick_seconds, budget_cu, min_cu) --
-- A window that follows the chain's last one within the same tick (a request became
-- runnable meanwhile), once that one has ended: it may spend what the tick's budget
-- `$5` has left, if that is at least `$6`. The tick keeps its start, so the next
-- tick's window comes when it would have. Returns the CU the window may spend, and
-- the heads the tick's first window read if they are this tick's.
UPDATE chain_state
SET leader = $2,
    lease_expires_at = now() + make_interval(secs => $3),
    window_ended_at = NULL,
    updated_at = now()
WHERE chain_id = $1
  AND window_ended_at IS NOT NULL
  AND window_started_at + make_interval(secs => $4 * 0.9) > now()
  AND $5 - tick_spent_cu >= $6
RETURNING $5 - tick_spent_cu AS budget_cu,
          head_updated_at >= window_started_at AS heads_fresh,
          head,
          safe_head;

-- end_window_lease(chain_id, worker, tick_seconds, spent_cu) --
-- Keep the chain until a tick after the tick's first window started (one tick's
-- budget for the windows started in it), and count what this window spent.
UPDATE chain_state
SET lease_expires_at = window_started_at + make_interval(secs => $3),
    window_ended_at = now(),
    tick_spent_cu = tick_spent_cu + $4,
    updated_at = now()
WHERE chain_id = $1 AND leader = $2;

-- save_heads(chain_id, head, safe_head) --
-- The head and safe head read at the start of a window, and the chain's seconds per
-- block learned from how far the head moved since it last moved (a moving average).
UPDATE chain_state
SET block_seconds = CASE
        WHEN head IS NULL OR $2 <= head OR head_changed_at IS NULL THEN block_seconds
        ELSE greatest(0.001, coalesce(block_seconds * 0.7, 0)
                             + (CASE WHEN block_seconds IS NULL THEN 1 ELSE 0.3 END)
                               * extract(epoch FROM now() - head_changed_at) / ($2 - head))
        END,
    head_changed_at = CASE WHEN head IS DISTINCT FROM $2 THEN now() ELSE head_changed_at END,
    head = $2, safe_head = $3, head_updated_at = now(), updated_at = now()
WHERE chain_id = $1;

-- load_learned_range(chain_id) --
-- The eth_getLogs span and the logs per block learned for a chain in earlier windows
-- (null if none yet).
SELECT learned_block_range, learned_logs_per_block FROM chain_state WHERE chain_id = $1;

-- save_learned_range(chain_id, span, logs_per_block) --
-- Remember what was learned of a chain, for the next window and other workers.
INSERT INTO chain_state (chain_id, learned_block_range, learned_logs_per_block, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (chain_id) DO UPDATE
SET learned_block_range = EXCLUDED.learned_block_range,
    learned_logs_per_block = coalesce(EXCLUDED.learned_logs_per_block,
                                      chain_state.learned_logs_per_block),
    updated_at = now();

-- close_abandoned_windows(chain_id) --
-- Windows whose worker died mid-way (the lease had run out): close their audit rows,
-- with every CU they sent calls for (`window_spend`, written before each call);
-- how many there were.
WITH closed AS (
    UPDATE windows w
    SET finished_at = now(),
        error = coalesce(w.error, 'worker lost before the window finished'),
        cu_spent = greatest(w.cu_spent, coalesce(s.cu_spent, 0)),
        calls = greatest(w.calls, coalesce(s.calls, 0))
    FROM (SELECT w2.id, s2.cu_spent, s2.calls
          FROM windows w2 LEFT JOIN window_spend s2 ON s2.window_id = w2.id
          WHERE w2.chain_id = $1 AND w2.finished_at IS NULL) s
    WHERE w.id = s.id
    RETURNING 1
)
SELECT count(*) FROM closed;

-- spend_window_cu(window_id, cu, calls, chain_id, worker) --
-- A window is about to send calls costing `$2` CU: written first, so that what the
-- provider is sent is in the audit even if the worker dies or the database goes away
-- right after; and only while worker `$5` still holds chain `$4`'s lease (a read, no
-- lock: a commit holding the lease row never delays a call). No row back: the lease
-- is another worker's now, and the call is not sent.
INSERT INTO window_spend (window_id, cu_spent, calls)
SELECT $1, $2, $3
WHERE EXISTS (SELECT 1 FROM chain_state
              WHERE chain_id = $4 AND leader = $5 AND lease_expires_at > now())
ON CONFLICT (window_id) DO UPDATE
SET cu_spent = window_spend.cu_spent + EXCLUDED.cu_spent,
    calls = window_spend.calls + EXCLUDED.calls
RETURNING 1;

-- open_window(chain_id, worker, budget_cu) --
-- The audit row of a window, filled in as it goes, with the start of the tick whose
-- budget it spends (its own start, or its tick's first window's).
INSERT INTO windows (chain_id, worker, budget_cu, tick_started_at)
SELECT $1, $2, $3, window_started_at FROM chain_state WHERE chain_id = $1
RETURNING id;

-- record_window(window_id, cu_spent, calls, errors, requests_served, new_matches, duplicate_matches, credits_charged, logs_fetched, head, safe_head, error, finished_at, duration_ms) --
-- The window's figures so far (each commit and the end of the window).
UPDATE windows
SET cu_spent = $2, calls = $3, errors = $4, requests_served = $5, new_matches = $6,
    duplicate_matches = $7, credits_charged = $8, logs_fetched = $9, head = $10,
    safe_head = $11, error = $12, finished_at = $13, duration_ms = $14
WHERE id = $1;

-- pause_requests_without_credits(chain_id) --
-- Requests of workspaces with no credits left wait without spending any CU.
UPDATE backfill_requests r
SET status = 'paused_credits', updated_at = now()
FROM workspaces w
WHERE w.id = r.workspace_id AND w.credits = 0
  AND r.chain_id = $1 AND r.status IN ('queued', 'processing', 'following')
RETURNING r.id;

-- refresh_runnable_requests(chain_id, safe_head) --
-- Take the chain's runnable requests: extend follow requests to the safe head `$2`
-- (their range and what remains), subtract the coverage their subscription
-- gained since (unless they rescan or redeliver: those scan covered blocks too),
-- finish those with nothing left to scan (a follow request is `following` instead,
-- its cursor the next block), resume paused_credits ones whose workspace has
-- credits again. A request whose plan no longer includes backfill or whose
-- subscription no longer stores events becomes `blocked` with the reason; a blocked
-- one whose rule holds again goes on. `resumed_for_credits`: the request
-- waited for credits until now (its first block may hold matches it already paid).
WITH runnable AS (
    SELECT r.id, r.status AS old_status,
           CASE WHEN r.follow AND $2::bigint > r.to_block THEN $2::bigint
                ELSE r.to_block END AS to_block,
           coalesce(r.remaining, int8multirange(int8range(r.from_block, r.to_block, '[]')))
             + CASE WHEN r.follow AND $2::bigint > r.to_block
                    THEN int8multirange(int8range(r.to_block + 1, $2::bigint, '[]'))
                    ELSE '{}'::int8multirange END
             - CASE WHEN r.rescan OR r.redeliver THEN '{}'::int8multirange
                    ELSE coalesce(c.covered, '{}'::int8multirange) END AS remaining,
           backfill_blocked_reason(w.plan, p.backfill_enabled, s.stored_events) AS blocked_reason
    FROM backfill_requests r
    JOIN workspaces w ON w.id = r.workspace_id
    JOIN plans p ON p.name = w.plan
    JOIN subscriptions s ON s.id = r.subscription_id
    LEFT JOIN subscription_coverage c ON c.subscription_id = r.subscription_id
    WHERE r.chain_id = $1
      AND (r.status IN ('queued', 'processing', 'following', 'blocked')
           OR (r.status = 'paused_credits' AND w.credits > 0))
    FOR UPDATE OF r
)
UPDATE backfill_requests r
SET to_block = CASE WHEN runnable.blocked_reason IS NULL THEN runnable.to_block
                    ELSE r.to_block END,
    remaining = CASE WHEN runnable.blocked_reason IS NULL THEN runnable.remaining
                     ELSE r.remaining END,
    cursor = CASE WHEN runnable.blocked_reason IS NOT NULL THEN r.cursor
                  WHEN isempty(runnable.remaining) AND r.follow THEN runnable.to_block + 1
                  WHEN isempty(runnable.remaining) THEN NULL
                  WHEN r.block_order = 'desc' THEN upper(runnable.remaining) - 1
                  ELSE lower(runnable.remaining) END,
    status = CASE WHEN runnable.blocked_reason IS NOT NULL THEN 'blocked'
                  WHEN isempty(runnable.remaining) AND r.follow THEN 'following'
                  WHEN NOT isempty(runnable.remaining) THEN
                      CASE WHEN r.status = 'paused_credits' THEN 'processing'
                           WHEN r.status = 'blocked' AND r.started_at IS NULL THEN 'queued'
                           WHEN r.status = 'blocked' THEN 'processing'
                           ELSE r.status END
                  WHEN r.blocks_scanned = 0 THEN 'completed_noop'
                  ELSE 'completed' END,
    blocked_reason = runnable.blocked_reason,
    finished_at = CASE WHEN runnable.blocked_reason IS NULL AND isempty(runnable.remaining)
                            AND NOT r.follow
                       THEN now() END,
    updated_at = now()
FROM runnable
WHERE r.id = runnable.id
RETURNING r.id, r.workspace_id, r.subscription_id, r.status, r.block_order, r.remaining,
          r.redeliver, r.created_at, r.follow, r.to_block,
          runnable.old_status = 'paused_credits' AS resumed_for_credits;

-- load_window_subscriptions(subscription_ids) --
-- Filters, webhooks and workspace settings of the subscriptions a window serves.
SELECT s.id, s.workspace_id, s.addresses, s.topics, s.event_abis,
       (s.webhook_url IS NOT NULL AND s.webhook_disabled_at IS NULL AND w.backfill_webhooks)
           AS sends_webhooks
FROM subscriptions s
JOIN workspaces w ON w.id = s.workspace_id
WHERE s.id = ANY($1::uuid[]);

-- record_transient_error(request_ids, error) --
-- Provider trouble: the requests wait for the next window, with the error and its time shown.
UPDATE backfill_requests
SET last_transient_error = $2, last_transient_error_at = now(), updated_at = now()
WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'processing', 'following');

-- record_chain_transient_error(chain_id, error) --
-- The chain itself is out of reach (its head cannot be read): every request that
-- would have run waits, with the error and its time shown.
UPDATE backfill_requests
SET last_transient_error = $2, last_transient_error_at = now(), updated_at = now()
WHERE chain_id = $1 AND status IN ('queued', 'processing', 'following');

-- fail_requests(request_ids, error) --
-- A non-retryable error: the requests stop with a message the owner can act on.
UPDATE backfill_requests
SET status = 'failed', error = $2, cursor = NULL, finished_at = now(), updated_at = now()
WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'processing', 'following', 'paused_credits')
RETURNING id;

-- count_request_window(request_ids) --
-- Each request served in a window counts that window once.
UPDATE backfill_requests SET windows = windows + 1 WHERE id = ANY($1::uuid[]);

-- update_estimates(request_ids, start_ats, finish_ats) --
-- ETA of queued and processing requests, from their place in the queue. A request
-- that started keeps the start it was given (or its real start, if it had none).
UPDATE backfill_requests r
SET estimated_start_at = CASE WHEN r.started_at IS NULL THEN e.start_at
                              ELSE coalesce(r.estimated_start_at, r.started_at) END,
    estimated_finish_at = e.finish_at
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS e (id, start_at, finish_at)
WHERE r.id = e.id AND r.status IN ('queued', 'processing');

-- queue_depth(chain_id) --
-- Requests per status on a chain (metrics).
SELECT status, count(*) AS n FROM backfill_requests WHERE chain_id = $1 GROUP BY status;

-- database_now --
-- The database's clock now (not the transaction's start): when the queue is counted.
SELECT clock_timestamp();

-- count_queue(chain_id, queue_calls, counted_at) --
-- The eth_getLogs calls a chain's runnable queue needs, as of `counted_at`: accepting
-- a request adds only what was queued since.
UPDATE chain_state SET queue_calls = $2, queue_counted_at = $3 WHERE chain_id = $1;

-- load_log_fragments(chain_id, addresses) --
-- The cache's fragments that may cover filters on these addresses (or on any).
SELECT address, topics, covered FROM log_fragments
WHERE chain_id = $1 AND (address = '*' OR address = ANY($2::text[]));

-- touch_log_fragments(chain_id, addresses, topics) --
-- The cache served from these fragments: they stay (maintenance drops unused ones).
UPDATE log_fragments SET used_at = now()
WHERE chain_id = $1 AND (address, topics) IN (SELECT * FROM unnest($2::text[], $3::text[]));

-- read_cached_logs(chain_id, low, high, addresses, topic0s, limit) --
-- Stored logs of blocks [low, high] in chain order, at most `limit`, narrowed to these
-- addresses and first topics when every served filter names them (null: any).
SELECT block_number, block_hash, log_index, transaction_hash, transaction_index,
       address, topics, data
FROM logs
WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
  AND ($4::bytea[] IS NULL OR address = ANY($4::bytea[]))
  AND ($5::bytea[] IS NULL OR topics[1] = ANY($5::bytea[]))
ORDER BY block_number, log_index
LIMIT $6;

-- read_cached_logs_desc(chain_id, low, high, addresses, topic0s, limit) --
-- The same, newest block first (logs of a block still in chain order).
SELECT block_number, block_hash, log_index, transaction_hash, transaction_index,
       address, topics, data
FROM logs
WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
  AND ($4::bytea[] IS NULL OR address = ANY($4::bytea[]))
  AND ($5::bytea[] IS NULL OR topics[1] = ANY($5::bytea[]))
ORDER BY block_number DESC, log_index
LIMIT $6;

-- forget_unused_log_fragments(unused_seconds) --
-- The log cache forgets fragments no window read or extended for this long: requests
-- on those filters call the provider again (and record them afresh).
DELETE FROM log_fragments WHERE used_at < now() - make_interval(secs => $1);
