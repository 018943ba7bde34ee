-- Follow mode: a request with `follow` scans from `from_block` to the safe head,
-- then keeps going as the safe head moves, until it is cancelled or paused. Its
-- `to_block` is the last block its range holds so far (each window extends it, and
-- `remaining`, to the chain's safe head); once it has caught up its status is
-- `following`, and its cursor is the next block it will scan (`to_block + 1` while
-- nothing is left). Follow requests scan upwards only.
ALTER TABLE backfill_requests ADD COLUMN follow boolean NOT NULL DEFAULT false;
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_follow_ascends
    CHECK (NOT follow OR block_order = 'asc');

ALTER TABLE backfill_requests DROP CONSTRAINT backfill_requests_status_check;
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_status_check CHECK (status IN (
    'queued', 'processing', 'following', 'paused_credits', 'paused', 'blocked',
    'completed', 'completed_noop', 'cancelled', 'failed'));
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_following_follows
    CHECK (status <> 'following' OR follow);

ALTER TABLE backfill_requests DROP CONSTRAINT backfill_requests_check2;
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_cursor_in_range CHECK (
    cursor IS NULL
    OR cursor BETWEEN from_block AND to_block + CASE WHEN follow THEN 1 ELSE 0 END);

-- The window's queue takes following requests too.
DROP INDEX backfill_requests_runnable_idx;
CREATE INDEX backfill_requests_runnable_idx ON backfill_requests (chain_id, created_at, id)
    WHERE status IN ('queued', 'processing', 'following', 'paused_credits', 'blocked');

-- Seconds per block the chain was seen to make (from the heads of successive
-- windows): a following request's lag in seconds, the dry run's CU per hour.
ALTER TABLE chain_state
    ADD COLUMN block_seconds double precision CHECK (block_seconds > 0),
    ADD COLUMN head_changed_at timestamptz;
