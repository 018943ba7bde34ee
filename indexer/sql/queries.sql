-- migration_lock --
-- Serialise migrators: waits for the lock, released at commit or rollback.
SELECT pg_advisory_xact_lock(hashtext('logfill.migrate'));

-- create_migrations_table --
-- The record of applied migrations, with the checksum of each file.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- migrations_table_exists --
-- Whether any migration was ever applied here.
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- list_applied_migrations --
-- Applied migrations in order.
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- record_migration --
-- Remember one applied migration.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- create_workspace --
-- A new workspace on an existing plan.
INSERT INTO workspaces (name, plan, credits)
VALUES ($1, $2, $3)
RETURNING id, name, plan, credits, backfill_webhooks, created_at;

-- create_api_key --
-- Store a key by its SHA-256 only.
INSERT INTO api_keys (workspace_id, key_sha256, prefix) VALUES ($1, $2, $3) RETURNING id;

-- plan_exists --
-- Whether a plan of that name exists.
SELECT EXISTS (SELECT 1 FROM plans WHERE name = $1);

-- list_plan_names --
-- Known plans, for error messages.
SELECT name FROM plans ORDER BY name;

-- add_credits --
-- Top up a workspace; returns the new balance, or nothing for an unknown workspace.
UPDATE workspaces SET credits = credits + $2 WHERE id = $1 RETURNING credits;

-- append_ledger_entry --
-- One line of the append-only credit ledger.
INSERT INTO credit_ledger (workspace_id, delta, balance_after, reason, backfill_request_id, window_id, note)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- set_workspace_plan --
-- Move a workspace to another plan; returns nothing for an unknown workspace.
UPDATE workspaces SET plan = $2 WHERE id = $1 RETURNING id, plan;

-- purge_expired_idempotency_keys --
-- Forget Idempotency-Key records past their expiry.
DELETE FROM idempotency_keys WHERE expires_at < now();

-- load_learned_range --
-- The eth_getLogs span learned for a chain in earlier windows (null if none yet).
SELECT learned_block_range FROM chain_state WHERE chain_id = $1;

-- save_learned_range --
-- Remember the span learned for a chain, for the next window and other workers.
INSERT INTO chain_state (chain_id, learned_block_range, updated_at)
VALUES ($1, $2, now())
ON CONFLICT (chain_id) DO UPDATE
SET learned_block_range = EXCLUDED.learned_block_range, updated_at = now();

-- take_window_lease --
-- Become the chain's window leader: free lease, expired lease, or our own once a
-- tick ($4 seconds) has passed since our last window started (a worker restarted
-- under the same name takes over without waiting for its lease to run out, and a
-- scheduler that fires early still gets one window per tick). The lease runs `$3`
-- seconds and is renewed on each commit.
INSERT INTO chain_state (chain_id, leader, lease_expires_at, window_started_at, updated_at)
VALUES ($1, $2, now() + make_interval(secs => $3), now(), now())
ON CONFLICT (chain_id) DO UPDATE
SET leader = EXCLUDED.leader,
    lease_expires_at = EXCLUDED.lease_expires_at,
    window_started_at = now(),
    updated_at = now()
WHERE chain_state.leader IS NULL
   OR (chain_state.leader = EXCLUDED.leader
       AND (chain_state.window_started_at IS NULL
            OR chain_state.window_started_at + make_interval(secs => $4) <= now()))
   OR chain_state.lease_expires_at IS NULL
   OR chain_state.lease_expires_at <= now()
RETURNING window_started_at;

-- renew_window_lease --
-- Fencing for a commit: still the leader? Then hold the chain a while longer.
UPDATE chain_state
SET lease_expires_at = greatest(lease_expires_at, now() + make_interval(secs => $3))
WHERE chain_id = $1 AND leader = $2
RETURNING 1;

-- end_window_lease --
-- Keep the chain until a tick after the window started: one window per tick.
UPDATE chain_state
SET lease_expires_at = window_started_at + make_interval(secs => $3), updated_at = now()
WHERE chain_id = $1 AND leader = $2;

-- save_heads --
-- The head and safe head read at the start of a window.
UPDATE chain_state
SET head = $2, safe_head = $3, head_updated_at = now(), updated_at = now()
WHERE chain_id = $1;

-- close_abandoned_windows --
-- Windows whose worker died mid-way (the lease had run out): close their audit rows.
UPDATE windows
SET finished_at = now(), error = coalesce(error, 'worker lost before the window finished')
WHERE chain_id = $1 AND finished_at IS NULL;

-- open_window --
-- The audit row of a window, filled in as it goes.
INSERT INTO windows (chain_id, worker, budget_cu) VALUES ($1, $2, $3) RETURNING id;

-- record_window --
-- The window's figures so far (each commit and the end of the window).
UPDATE windows
SET cu_spent = $2, calls = $3, errors = $4, requests_served = $5, new_matches = $6,
    duplicate_matches = $7, credits_charged = $8, logs_fetched = $9, head = $10,
    safe_head = $11, error = $12, finished_at = $13, duration_ms = $14
WHERE id = $1;

-- pause_requests_without_credits --
-- Requests of workspaces with no credits left wait without spending any CU.
UPDATE backfill_requests r
SET status = 'paused_credits', updated_at = now()
FROM workspaces w
WHERE w.id = r.workspace_id AND w.credits = 0
  AND r.chain_id = $1 AND r.status IN ('queued', 'processing')
RETURNING r.id;

-- refresh_runnable_requests --
-- Take the chain's runnable requests: subtract the coverage their subscription
-- gained since (unless they rescan or redeliver: those scan covered blocks too),
-- finish those with nothing left to scan, resume paused_credits ones whose
-- workspace has credits again.
WITH runnable AS (
    SELECT r.id,
           coalesce(r.remaining, int8multirange(int8range(r.from_block, r.to_block, '[]')))
             - CASE WHEN r.rescan OR r.redeliver THEN '{}'::int8multirange
                    ELSE coalesce(c.covered, '{}'::int8multirange) END AS remaining
    FROM backfill_requests r
    JOIN workspaces w ON w.id = r.workspace_id
    LEFT JOIN subscription_coverage c ON c.subscription_id = r.subscription_id
    WHERE r.chain_id = $1
      AND (r.status IN ('queued', 'processing') OR (r.status = 'paused_credits' AND w.credits > 0))
    FOR UPDATE OF r
)
UPDATE backfill_requests r
SET remaining = runnable.remaining,
    cursor = CASE WHEN isempty(runnable.remaining) THEN NULL
                  WHEN r.block_order = 'desc' THEN upper(runnable.remaining) - 1
                  ELSE lower(runnable.remaining) END,
    status = CASE WHEN NOT isempty(runnable.remaining) THEN
                      CASE WHEN r.status = 'paused_credits' THEN 'processing' ELSE r.status END
                  WHEN r.blocks_scanned = 0 THEN 'completed_noop'
                  ELSE 'completed' END,
    finished_at = CASE WHEN isempty(runnable.remaining) THEN now() END,
    updated_at = now()
FROM runnable
WHERE r.id = runnable.id
RETURNING r.id, r.workspace_id, r.subscription_id, r.status, r.block_order, r.remaining,
          r.redeliver, r.created_at;

-- load_window_subscriptions --
-- Filters, webhooks and workspace settings of the subscriptions a window serves.
SELECT s.id, s.workspace_id, s.addresses, s.topics, s.event_abis,
       (s.webhook_url IS NOT NULL AND s.webhook_disabled_at IS NULL AND w.backfill_webhooks)
           AS sends_webhooks
FROM subscriptions s
JOIN workspaces w ON w.id = s.workspace_id
WHERE s.id = ANY($1::uuid[]);

-- lock_served_requests --
-- The requests a commit advances, locked; the commit skips any whose status or
-- cursor changed since the window read them (owner pause/cancel, another leader).
SELECT id, status, cursor
FROM backfill_requests
WHERE id = ANY($1::uuid[])
ORDER BY id
FOR UPDATE;

-- create_window_logs_table --
-- Per-connection staging table for COPY; emptied at each commit.
CREATE TEMP TABLE IF NOT EXISTS window_logs (
    chain_id bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    log_index integer NOT NULL,
    transaction_hash bytea NOT NULL,
    transaction_index integer NOT NULL,
    address bytea NOT NULL,
    topics bytea[] NOT NULL,
    data bytea NOT NULL
) ON COMMIT DELETE ROWS;

-- create_window_matches_table --
-- Per-connection staging table of a commit's candidate matches, each with its log,
-- filled by one COPY (text) and emptied at each commit.
CREATE TEMP TABLE IF NOT EXISTS window_matches (
    subscription_id uuid NOT NULL,
    backfill_request_id uuid,
    block_number bigint NOT NULL,
    block_hash bytea NOT NULL,
    log_index integer NOT NULL,
    transaction_hash bytea NOT NULL,
    transaction_index integer NOT NULL,
    address bytea NOT NULL,
    topics bytea[] NOT NULL,
    data bytea NOT NULL
) ON COMMIT DELETE ROWS;

-- insert_staged_logs --
-- Store the staged candidates' logs once (a log two subscriptions match is staged
-- twice; ON CONFLICT keeps one).
INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,
                  transaction_index, address, topics, data)
SELECT $1, block_number, block_hash, log_index, transaction_hash, transaction_index,
       address, topics, data
FROM window_matches
ON CONFLICT (chain_id, block_hash, log_index) DO NOTHING;

-- insert_staged_matches --
-- Store every staged match (the caller checked that the balances pay for all of
-- them); per (subscription, request) the number that were new, and for the
-- subscriptions in $2 which ones (block number, log index), for the outbox.
WITH stored AS (
    INSERT INTO matches (subscription_id, log_id, block_number, log_index, backfill_request_id)
    SELECT s.subscription_id, l.id, s.block_number, s.log_index, s.backfill_request_id
    FROM window_matches s
    JOIN logs l ON l.chain_id = $1 AND l.block_hash = s.block_hash AND l.log_index = s.log_index
    ON CONFLICT (subscription_id, log_id) DO NOTHING
    RETURNING subscription_id, backfill_request_id, block_number, log_index
)
SELECT subscription_id, backfill_request_id, count(*)::integer AS new_matches,
       array_agg(block_number) FILTER (WHERE subscription_id = ANY($2::uuid[])) AS block_numbers,
       array_agg(log_index) FILTER (WHERE subscription_id = ANY($2::uuid[])) AS log_indexes
FROM stored
GROUP BY subscription_id, backfill_request_id;

-- insert_window_logs --
-- Store the staged logs once; ids of the ones that were new.
INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,
                  transaction_index, address, topics, data)
SELECT chain_id, block_number, block_hash, log_index, transaction_hash,
       transaction_index, address, topics, data
FROM window_logs
ON CONFLICT (chain_id, block_hash, log_index) DO NOTHING
RETURNING id, block_hash, log_index;

-- find_stored_logs --
-- Ids of logs stored before (by the unique key, one index probe each).
SELECT l.id, l.block_hash, l.log_index
FROM unnest($2::bytea[], $3::integer[]) AS k (block_hash, log_index)
JOIN logs l ON l.chain_id = $1 AND l.block_hash = k.block_hash AND l.log_index = k.log_index;

-- existing_matches --
-- Which of these (subscription, log) pairs are stored already (never charged again).
SELECT m.subscription_id, m.log_id
FROM matches m
JOIN unnest($1::uuid[], $2::bigint[]) AS c (subscription_id, log_id)
  ON m.subscription_id = c.subscription_id AND m.log_id = c.log_id;

-- lock_workspaces --
-- Balances of the workspaces a commit charges, locked in id order (no deadlocks
-- between leaders of different chains).
SELECT id, credits FROM workspaces WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE;

-- insert_matches --
-- Store paid matches; RETURNING reports only the ones that are new.
INSERT INTO matches (subscription_id, log_id, block_number, log_index, backfill_request_id)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::integer[], $5::uuid[])
ON CONFLICT (subscription_id, log_id) DO NOTHING
RETURNING subscription_id, log_id;

-- charge_credits --
-- Debit a workspace; the CHECK keeps the balance from going below zero.
UPDATE workspaces SET credits = credits - $2 WHERE id = $1 RETURNING credits;

-- insert_deliveries --
-- Outbox rows: one webhook POST each, sent by the delivery job.
INSERT INTO webhook_deliveries (subscription_id, workspace_id, backfill_request_id, payload,
                                event_count, first_block)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::integer[],
                     $6::bigint[]);

-- advance_request --
-- Progress of one request after a commit, compare-and-set on the cursor it had.
UPDATE backfill_requests
SET remaining = $3,
    cursor = $4,
    status = $5,
    blocks_scanned = blocks_scanned + $6,
    matches = matches + $7,
    new_matches = new_matches + $8,
    duplicate_matches = duplicate_matches + $9,
    credits_charged = credits_charged + $10,
    cu_spent = cu_spent + $11,
    started_at = coalesce(started_at, now()),
    finished_at = CASE WHEN $5 IN ('completed', 'completed_noop') THEN now() END,
    last_transient_error = NULL,
    updated_at = now()
WHERE id = $1 AND cursor IS NOT DISTINCT FROM $2
RETURNING id;

-- add_coverage --
-- Blocks now scanned for a subscription.
INSERT INTO subscription_coverage (subscription_id, covered, updated_at)
VALUES ($1, $2, now())
ON CONFLICT (subscription_id) DO UPDATE
SET covered = subscription_coverage.covered + EXCLUDED.covered, updated_at = now();

-- pause_workspace_requests --
-- A workspace ran out of credits: its runnable requests on this chain wait for a top-up.
UPDATE backfill_requests
SET status = 'paused_credits', updated_at = now()
WHERE workspace_id = ANY($1::uuid[]) AND chain_id = $2 AND status IN ('queued', 'processing')
RETURNING id;

-- record_transient_error --
-- Provider trouble: the requests wait for the next window, with the error shown.
UPDATE backfill_requests
SET last_transient_error = $2, updated_at = now()
WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'processing');

-- fail_requests --
-- A non-retryable error: the requests stop with a message the owner can act on.
UPDATE backfill_requests
SET status = 'failed', error = $2, cursor = NULL, finished_at = now(), updated_at = now()
WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'processing', 'paused_credits')
RETURNING id;

-- count_request_window --
-- Each request served in a window counts that window once.
UPDATE backfill_requests SET windows = windows + 1 WHERE id = ANY($1::uuid[]);

-- update_estimates --
-- ETA of queued and processing requests, from their place in the queue.
UPDATE backfill_requests r
SET estimated_start_at = CASE WHEN r.started_at IS NULL THEN e.start_at END,
    estimated_finish_at = e.finish_at
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS e (id, start_at, finish_at)
WHERE r.id = e.id AND r.status IN ('queued', 'processing');

-- queue_depth --
-- Requests per status on a chain (metrics).
SELECT status, count(*) AS n FROM backfill_requests WHERE chain_id = $1 GROUP BY status;

-- runnable_queue --
-- A chain's runnable requests in FIFO order with the blocks each still has to scan.
SELECT r.id,
       (SELECT coalesce(sum(upper(x) - lower(x)), 0)::bigint
        FROM unnest(coalesce(r.remaining,
                             int8multirange(int8range(r.from_block, r.to_block, '[]')))) AS x)
           AS blocks
FROM backfill_requests r
WHERE r.chain_id = $1 AND r.status IN ('queued', 'processing')
ORDER BY r.created_at, r.id;
