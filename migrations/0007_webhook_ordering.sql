-- Webhook ordering per subscription, and the indexes the independent claim walks.

-- 'independent': a subscription's deliveries are sent and retried each on its own,
-- several at once; a delivery waiting for its retry holds back nothing (events carry
-- block_number and log_index, so a receiver can order them). 'strict': one after
-- the other in write (block) order, a failed delivery holding back the later ones.
-- Subscriptions that exist already were promised strict order: they keep it (their
-- owner can switch); new ones are independent unless they ask for strict.
ALTER TABLE subscriptions ADD COLUMN webhook_ordering text NOT NULL DEFAULT 'strict'
    CHECK (webhook_ordering IN ('independent', 'strict'));
ALTER TABLE subscriptions ALTER COLUMN webhook_ordering SET DEFAULT 'independent';

-- An independent subscription's due rows, oldest due first: a range scan that never
-- walks the rows waiting for a retry, however many there are.
CREATE INDEX webhook_deliveries_pending_due_idx
    ON webhook_deliveries (subscription_id, next_attempt_at, seq)
    WHERE status = 'pending';

-- A subscription's rows in flight (leased), counted against its concurrency bound:
-- only claimed rows are in this index, never the backlog.
CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (subscription_id)
    WHERE status = 'pending' AND leased_until IS NOT NULL;
