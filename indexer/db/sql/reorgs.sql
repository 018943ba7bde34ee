-- Reorgs: the headers recorded near the safe head, their checks, the repair, the halt.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- record_chain_block(chain_id, block_number, block_hash, parent_hash) --
-- The header of a verified call's last block, in the commit that stores the call's
-- logs. A block recorded already keeps the hash it had: a different one read later
-- is for the check to find, not to overwrite.
INSERT INTO chain_blocks (chain_id, block_number, block_hash, parent_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (chain_id, block_number) DO NOTHING;

-- blocks_to_check(chain_id, low) --
-- The recorded blocks a window reads again: the newest one the last check found
-- canonical and every one recorded since, none below `$2` (the check zone).
SELECT b.block_number, b.block_hash
FROM chain_blocks b
LEFT JOIN chain_state s ON s.chain_id = b.chain_id
WHERE b.chain_id = $1 AND b.block_number >= greatest($2, coalesce(s.checked_block, 0))
ORDER BY b.block_number DESC
LIMIT 256;

-- blocks_checked(chain_id, block_number, prune_below) --
-- Every block up to `$2` was found canonical; records below `$3` are too deep to
-- matter again.
WITH pruned AS (
    DELETE FROM chain_blocks WHERE chain_id = $1 AND block_number < $3
)
UPDATE chain_state SET checked_block = $2, updated_at = now() WHERE chain_id = $1;

-- stored_hashes(chain_id, below, floor) --
-- What logfill holds of the blocks in [`$3`, `$2`): the recorded headers, the parent
-- hashes they name for the block before, and the block hashes of the stored logs,
-- newest first (a block may appear with two hashes if its records disagree).
SELECT block_number, block_hash FROM chain_blocks
WHERE chain_id = $1 AND block_number < $2 AND block_number >= $3
UNION
SELECT block_number - 1, parent_hash FROM chain_blocks
WHERE chain_id = $1 AND block_number - 1 < $2 AND block_number - 1 >= $3
UNION
SELECT DISTINCT block_number, block_hash FROM logs
WHERE chain_id = $1 AND block_number < $2 AND block_number >= $3
ORDER BY block_number DESC;

-- open_reorg(chain_id, window_id, fork_block, newest_block, stored_hash, canonical_hash, source) --
-- The audit row of one repair.
INSERT INTO reorgs (chain_id, window_id, fork_block, newest_block, depth, stored_hash,
                    canonical_hash, source)
VALUES ($1, $2, $3, $4, greatest(1, $4::bigint - $3::bigint + 1), $5, $6, $7)
RETURNING id;

-- remove_matches_from(chain_id, fork_block, reorg_id) --
-- Every stored match of the chain from block `$2` on leaves `matches` for
-- `removed_matches`, with its log as it was; returns them, in chain order per
-- subscription.
WITH gone AS (
    DELETE FROM matches m
    USING subscriptions s
    WHERE s.chain_id = $1 AND m.subscription_id = s.id AND m.block_number >= $2
    RETURNING m.subscription_id, s.workspace_id, m.block_number, m.log_index,
              m.backfill_request_id, m.created_at
), kept AS (
    INSERT INTO removed_matches (subscription_id, workspace_id, block_number, log_index,
                                 backfill_request_id, reorg_id, block_hash, transaction_hash,
                                 transaction_index, address, topics, data, matched_at)
    SELECT g.subscription_id, g.workspace_id, g.block_number, g.log_index,
           g.backfill_request_id, $3, l.block_hash, l.transaction_hash, l.transaction_index,
           l.address, l.topics, l.data, g.created_at
    FROM gone g
    JOIN logs l ON l.chain_id = $1 AND l.block_number = g.block_number
               AND l.log_index = g.log_index
    RETURNING *
)
SELECT * FROM kept ORDER BY subscription_id, block_number, log_index;

-- refund_credits(workspace_id, credits) --
-- Credits paid for matches a reorg removed go back to the workspace.
UPDATE workspaces SET credits = credits + $2 WHERE id = $1 RETURNING credits;

-- forget_blocks_from(chain_id, fork_block) --
-- Nothing logfill holds of the chain from block `$2` on is true any more: its logs,
-- recorded headers, the coverage of every subscription on the chain and of the log
-- cache's fragments go; the next check starts from what stays.
WITH from_fork AS (SELECT int8multirange(int8range($2::bigint, NULL)) AS blocks),
logs_gone AS (
    DELETE FROM logs WHERE chain_id = $1 AND block_number >= $2
), headers_gone AS (
    DELETE FROM chain_blocks WHERE chain_id = $1 AND block_number >= $2
), fragments AS (
    UPDATE log_fragments f SET covered = f.covered - from_fork.blocks
    FROM from_fork
    WHERE f.chain_id = $1 AND f.covered && from_fork.blocks
), coverage AS (
    UPDATE subscription_coverage c SET covered = c.covered - from_fork.blocks, updated_at = now()
    FROM from_fork, subscriptions s
    WHERE s.id = c.subscription_id AND s.chain_id = $1 AND c.covered && from_fork.blocks
)
UPDATE chain_state SET checked_block = NULL, updated_at = now() WHERE chain_id = $1;

-- rewind_requests(chain_id, fork_block, request_ids, removed) --
-- Give the blocks from `$2` on back to every request of the chain that has not
-- ended by cancel or failure: what it had done of them is to scan again (a completed
-- or following request goes back to processing). `$3`/`$4`: how many of each
-- request's matches were removed. Returns the requests given blocks back.
WITH counts AS (
    SELECT * FROM unnest($3::uuid[], $4::bigint[]) AS c (id, removed)
), touched AS (
    SELECT r.id,
           CASE WHEN r.status IN ('cancelled', 'failed') OR r.remaining IS NULL
                     OR r.to_block < $2
                THEN '{}'::int8multirange
                ELSE int8multirange(int8range(greatest($2, r.from_block), r.to_block, '[]'))
                     - r.remaining END AS given_back
    FROM backfill_requests r
    WHERE r.chain_id = $1 AND (r.to_block >= $2 OR r.id = ANY($3::uuid[]))
    FOR UPDATE
), rewound AS (
    SELECT t.id, t.given_back, r.remaining + t.given_back AS remaining
    FROM touched t JOIN backfill_requests r ON r.id = t.id
)
UPDATE backfill_requests r
SET remaining = CASE WHEN isempty(w.given_back) THEN r.remaining ELSE w.remaining END,
    cursor = CASE WHEN isempty(w.given_back) THEN r.cursor
                  WHEN r.block_order = 'desc' THEN upper(w.remaining) - 1
                  ELSE lower(w.remaining) END,
    blocks_scanned = CASE WHEN isempty(w.given_back) THEN r.blocks_scanned
                          ELSE least(r.blocks_scanned,
                                     r.to_block - r.from_block + 1
                                     - (SELECT sum(upper(x) - lower(x))
                                        FROM unnest(w.remaining) AS x)) END,
    status = CASE WHEN NOT isempty(w.given_back)
                       AND r.status IN ('completed', 'completed_noop', 'following')
                  THEN 'processing' ELSE r.status END,
    finished_at = CASE WHEN NOT isempty(w.given_back)
                            AND r.status IN ('completed', 'completed_noop')
                       THEN NULL ELSE r.finished_at END,
    matches_removed = r.matches_removed + coalesce(c.removed, 0),
    updated_at = now()
FROM rewound w
LEFT JOIN counts c ON c.id = w.id
WHERE r.id = w.id
RETURNING r.id, NOT isempty(w.given_back) AS rewound;

-- count_reorg(reorg_id, matches_removed, requests_rewound) --
-- The repair's figures on its audit row.
UPDATE reorgs SET matches_removed = $2, requests_rewound = $3 WHERE id = $1;

-- chain_halted(chain_id) --
-- Why the chain's windows are stopped (null: they run).
SELECT halted_reason FROM chain_state WHERE chain_id = $1;

-- halt_chain(chain_id, reason) --
-- A reorg deeper than the chain's limit: its windows stop until an operator resumes
-- it, and every request that would have run shows why.
WITH requests AS (
    UPDATE backfill_requests
    SET last_transient_error = $2, last_transient_error_at = now(), updated_at = now()
    WHERE chain_id = $1 AND status IN ('queued', 'processing', 'following', 'paused_credits')
)
UPDATE chain_state SET halted_reason = $2, halted_at = now(), updated_at = now()
WHERE chain_id = $1;

-- resume_chain(chain_id) --
-- An operator lets the chain's windows run again; the reason it was stopped.
UPDATE chain_state c SET halted_reason = NULL, halted_at = NULL, updated_at = now()
FROM (SELECT halted_reason FROM chain_state WHERE chain_id = $1 FOR UPDATE) old
WHERE c.chain_id = $1
RETURNING old.halted_reason;

-- chain_status(chain_id) --
-- What an operator sees of one chain: heads, the check, the halt, the last reorg.
SELECT c.chain_id, c.head, c.safe_head, c.head_updated_at, c.checked_block,
       c.halted_reason, c.halted_at, c.leader,
       (SELECT count(*) FROM reorgs r WHERE r.chain_id = c.chain_id) AS reorgs,
       (SELECT to_jsonb(r) - 'stored_hash' - 'canonical_hash' FROM reorgs r
        WHERE r.chain_id = c.chain_id ORDER BY r.id DESC LIMIT 1) AS last_reorg
FROM chain_state c
WHERE c.chain_id = $1;
