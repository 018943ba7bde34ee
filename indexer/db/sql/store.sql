-- One answered chunk in one transaction: staging, logs, matches, credits, cursors, coverage.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

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

-- lock_served_requests(request_ids) --
-- The requests a commit advances, locked; the commit skips any whose status or
-- cursor changed since the window read them (owner pause/cancel, another leader),
-- and blocks any that may not charge now (`blocked_reason` not null: the plan no
-- longer includes backfill, or the subscription stores no events).
SELECT r.id, r.status, r.cursor,
       backfill_blocked_reason(w.plan, p.backfill_enabled, s.stored_events) AS blocked_reason
FROM backfill_requests r
JOIN workspaces w ON w.id = r.workspace_id
JOIN plans p ON p.name = w.plan
JOIN subscriptions s ON s.id = r.subscription_id
WHERE r.id = ANY($1::uuid[])
ORDER BY r.id
FOR UPDATE OF r;

-- block_requests(request_ids, reasons) --
-- Requests that lost their right to run stop here, with the reason; the window lets
-- them go on once the rule holds again (`refresh_runnable_requests`).
UPDATE backfill_requests r
SET status = 'blocked', blocked_reason = b.reason, updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS b (id, reason)
WHERE r.id = b.id AND r.status IN ('queued', 'processing', 'following', 'paused_credits');

-- own_stored_matches(subscription_ids, blocks, request_ids) --
-- Matches already stored under these requests in these blocks: what a request
-- paid for before it paused for credits in the middle of a block, found again
-- when it goes on (neither new nor a duplicate for that request).
SELECT m.subscription_id, m.block_number, m.log_index, m.backfill_request_id
FROM unnest($1::uuid[], $2::bigint[], $3::uuid[]) AS k (subscription_id, block_number, request_id)
JOIN matches m ON m.subscription_id = k.subscription_id AND m.block_number = k.block_number
              AND m.backfill_request_id = k.request_id;

-- lock_workspaces(workspace_ids) --
-- Balances of the workspaces a commit charges, locked in id order (no deadlocks
-- between leaders of different chains).
SELECT id, credits FROM workspaces WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE;

-- insert_staged_logs(chain_id) --
-- Store the staged candidates' logs once, keyed by their place on the chain (a log
-- two subscriptions match is staged twice; ON CONFLICT keeps one).
INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,
                  transaction_index, address, topics, data)
SELECT $1, block_number, block_hash, log_index, transaction_hash, transaction_index,
       address, topics, data
FROM window_matches
ON CONFLICT (chain_id, block_number, log_index) DO NOTHING;

-- insert_staged_matches(detailed_subscription_ids) --
-- Store every staged match (the caller checked that the balances pay for all of
-- them); per (subscription, request) the number that were new, and for the
-- subscriptions in $1 which ones (block number, log index), for the outbox.
WITH stored AS (
    INSERT INTO matches (subscription_id, block_number, log_index, backfill_request_id)
    SELECT subscription_id, block_number, log_index, backfill_request_id
    FROM window_matches
    ON CONFLICT (subscription_id, block_number, log_index) DO NOTHING
    RETURNING subscription_id, backfill_request_id, block_number, log_index
)
SELECT subscription_id, backfill_request_id, count(*)::integer AS new_matches,
       array_agg(block_number) FILTER (WHERE subscription_id = ANY($1::uuid[])) AS block_numbers,
       array_agg(log_index) FILTER (WHERE subscription_id = ANY($1::uuid[])) AS log_indexes
FROM stored
GROUP BY subscription_id, backfill_request_id;

-- insert_window_logs --
-- Store the staged logs once (the ones already stored are kept as they are).
INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,
                  transaction_index, address, topics, data)
SELECT chain_id, block_number, block_hash, log_index, transaction_hash,
       transaction_index, address, topics, data
FROM window_logs
ON CONFLICT (chain_id, block_number, log_index) DO NOTHING;

-- existing_matches(subscription_ids, block_numbers, log_indexes) --
-- Which of these (subscription, log) pairs are stored already (never charged again).
SELECT m.subscription_id, m.block_number, m.log_index
FROM matches m
JOIN unnest($1::uuid[], $2::bigint[], $3::integer[]) AS c (subscription_id, block_number, log_index)
  ON m.subscription_id = c.subscription_id AND m.block_number = c.block_number
 AND m.log_index = c.log_index;

-- insert_matches(subscription_ids, block_numbers, log_indexes, backfill_request_ids) --
-- Store paid matches; RETURNING reports only the ones that are new.
INSERT INTO matches (subscription_id, block_number, log_index, backfill_request_id)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::integer[], $4::uuid[])
ON CONFLICT (subscription_id, block_number, log_index) DO NOTHING
RETURNING subscription_id, block_number, log_index;

-- charge_credits(workspace_id, credits) --
-- Debit a workspace; the CHECK keeps the balance from going below zero.
UPDATE workspaces SET credits = credits - $2 WHERE id = $1 RETURNING credits;

-- advance_request(request_id, old_cursor, remaining, cursor, status, blocks_scanned, matches, new_matches, duplicate_matches, credits_charged, cu_spent, window_id) --
-- Progress of one request after a commit, compare-and-set on the cursor it had, and
-- the same progress added to the request's line for this window (nothing when the
-- cursor had moved: then no id comes back).
WITH advanced AS (
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
        last_transient_error_at = NULL,
        updated_at = now()
    WHERE id = $1 AND cursor IS NOT DISTINCT FROM $2
    RETURNING id
)
INSERT INTO backfill_request_windows AS w
    (backfill_request_id, window_id, cu_spent, blocks_scanned, matches, new_matches)
SELECT id, $12, $11, $6, $7, $8 FROM advanced
ON CONFLICT (backfill_request_id, window_id) DO UPDATE
SET cu_spent = w.cu_spent + EXCLUDED.cu_spent,
    blocks_scanned = w.blocks_scanned + EXCLUDED.blocks_scanned,
    matches = w.matches + EXCLUDED.matches,
    new_matches = w.new_matches + EXCLUDED.new_matches
RETURNING backfill_request_id;

-- add_coverage(subscription_id, blocks, chain_id, fragment_addresses, fragment_topics) --
-- Blocks now scanned for a subscription, and so in the chain's log cache for the
-- fragments of its filter (every log the filter matches there is stored).
WITH cached AS (
    INSERT INTO log_fragments AS f (chain_id, address, topics, covered)
    SELECT $3, a, t, $2::int8multirange FROM unnest($4::text[], $5::text[]) AS x (a, t)
    ON CONFLICT (chain_id, address, topics) DO UPDATE
    SET covered = f.covered + EXCLUDED.covered, used_at = now()
)
INSERT INTO subscription_coverage (subscription_id, covered, updated_at)
VALUES ($1, $2, now())
ON CONFLICT (subscription_id) DO UPDATE
SET covered = subscription_coverage.covered + EXCLUDED.covered, updated_at = now();

-- pause_workspace_requests(workspace_ids, chain_id) --
-- A workspace ran out of credits: its runnable requests on this chain wait for a top-up.
UPDATE backfill_requests
SET status = 'paused_credits', updated_at = now()
WHERE workspace_id = ANY($1::uuid[]) AND chain_id = $2
  AND status IN ('queued', 'processing', 'following')
RETURNING id;
