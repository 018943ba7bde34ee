-- What an owner sees of a running request: when the provider last held it back,
-- and a status for a request whose right to run is gone (its workspace's plan no
-- longer includes backfill, or its subscription no longer stores events). Such a
-- request is `blocked` with a reason, charges nothing, and goes on by itself once
-- the rule holds again.

ALTER TABLE backfill_requests ADD COLUMN last_transient_error_at timestamptz;
ALTER TABLE backfill_requests ADD COLUMN blocked_reason text;

ALTER TABLE backfill_requests DROP CONSTRAINT backfill_requests_status_check;
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_status_check CHECK (status IN (
    'queued', 'processing', 'paused_credits', 'paused', 'blocked',
    'completed', 'completed_noop', 'cancelled', 'failed'));
ALTER TABLE backfill_requests ADD CONSTRAINT backfill_requests_blocked_has_reason
    CHECK ((status = 'blocked') = (blocked_reason IS NOT NULL));

-- The window looks at blocked requests too (to let them go on).
DROP INDEX backfill_requests_runnable_idx;
CREATE INDEX backfill_requests_runnable_idx ON backfill_requests (chain_id, created_at, id)
    WHERE status IN ('queued', 'processing', 'paused_credits', 'blocked');

-- Why a request may not charge now (null: it may), in the owner's words. One
-- definition for the window's refresh and every commit's check.
CREATE FUNCTION backfill_blocked_reason(plan text, backfill_enabled boolean, stored_events boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN NOT backfill_enabled THEN
            'the workspace''s plan (' || plan || ') does not include backfill; '
            || 'it goes on once the plan includes backfill again'
        WHEN NOT stored_events THEN
            'the subscription does not store events (stored_events is false); '
            || 'it goes on once stored_events is true again'
    END
$$;
