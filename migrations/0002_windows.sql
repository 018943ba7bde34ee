-- Backfill windows: what each request still has to scan, the window lease, and
-- a fuller audit row per window.

-- The blocks a request still has to scan (its range minus its subscription's
-- coverage, unless it rescans). Null until a window first takes the request.
ALTER TABLE backfill_requests ADD COLUMN remaining int8multirange;
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_remaining_in_range CHECK (
    remaining IS NULL OR remaining <@ int8multirange(int8range(from_block, to_block, '[]'))
);

-- When the current leader started its window: the lease lasts until a tick later,
-- so that a chain gets one window per tick whichever worker runs it.
ALTER TABLE chain_state ADD COLUMN window_started_at timestamptz;

ALTER TABLE windows
    ADD COLUMN logs_fetched  bigint NOT NULL DEFAULT 0 CHECK (logs_fetched >= 0),
    ADD COLUMN duplicate_matches bigint NOT NULL DEFAULT 0 CHECK (duplicate_matches >= 0),
    ADD COLUMN credits_charged bigint NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    ADD COLUMN duration_ms   integer CHECK (duration_ms >= 0);

-- Outbox rows in the order they were written: a subscription's batches go out in
-- block order (several rows of one commit share created_at).
ALTER TABLE webhook_deliveries ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX webhook_deliveries_subscription_seq_idx ON webhook_deliveries (subscription_id, seq);

-- Matches are written by the hundred thousand: keep only the checks and indexes
-- that earn their cost. The request id on a match is history (like the ledger's),
-- and no query looks matches up by log alone.
ALTER TABLE matches DROP CONSTRAINT matches_backfill_request_id_fkey;
DROP INDEX matches_log_idx;
