-- A request that can run wakes the chain's workers at once, instead of waiting for
-- the next tick; and a tick's budget is shared by the windows that start in it.
--
-- `tick_spent_cu` is the CU spent by the windows started since `window_started_at`
-- (the tick's first window); `window_ended_at` is set when the chain's last window
-- ended (NULL while one runs). A window may follow another within the same tick
-- only once that one has ended, and spends at most what the tick has left
-- (indexer/window/chain_state.py).
ALTER TABLE chain_state
    ADD COLUMN window_ended_at timestamptz,
    ADD COLUMN tick_spent_cu bigint NOT NULL DEFAULT 0 CHECK (tick_spent_cu >= 0);

-- Each window's tick (the start of the tick's first window): the windows of one tick
-- spend one budget between them.
ALTER TABLE windows ADD COLUMN tick_started_at timestamptz;

-- Every worker LISTENs on `logfill_requests`; the payload is the chain id. NOTIFY is
-- delivered on commit, and one transaction's identical payloads are folded into one.
CREATE FUNCTION notify_requests_runnable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('logfill_requests', NEW.chain_id::text);
    RETURN NULL;
END $$;

-- A request queued on a chain with no other request waiting to start: the worker may
-- be idle. Behind a queued request it would not start earlier anyway (the queue is
-- served in order, a window per tick), and a transaction that NOTIFYs holds a
-- cluster-wide lock until its commit is on disk: a burst of POSTs would commit one
-- at a time.
CREATE FUNCTION notify_request_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM backfill_requests
                   WHERE chain_id = NEW.chain_id AND status = 'queued' AND id <> NEW.id) THEN
        PERFORM pg_notify('logfill_requests', NEW.chain_id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER backfill_requests_queued
AFTER INSERT ON backfill_requests
FOR EACH ROW WHEN (NEW.status IN ('queued', 'processing'))
EXECUTE FUNCTION notify_request_queued();

-- A request resumed or retried.

CREATE TRIGGER backfill_requests_runnable_again
AFTER UPDATE OF status ON backfill_requests
FOR EACH ROW WHEN (NEW.status IN ('queued', 'processing')
                   AND OLD.status NOT IN ('queued', 'processing'))
EXECUTE FUNCTION notify_requests_runnable();

-- A top-up: the workspace's requests waiting for credits can go on.
CREATE FUNCTION notify_credits_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('logfill_requests', r.chain_id::text)
    FROM (SELECT DISTINCT chain_id FROM backfill_requests
          WHERE workspace_id = NEW.id AND status = 'paused_credits') AS r;
    RETURN NULL;
END $$;

CREATE TRIGGER workspaces_credits_added
AFTER UPDATE OF credits ON workspaces
FOR EACH ROW WHEN (NEW.credits > OLD.credits)
EXECUTE FUNCTION notify_credits_added();
