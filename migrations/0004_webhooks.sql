-- Webhook delivery: a lease token per claim, and the index the claim walks.

-- Set when a worker claims a delivery, cleared with its outcome. The outcome is
-- written only if the token is still the claim's (and the lease has not run out),
-- so a worker that lost its lease cannot overwrite a newer outcome.
ALTER TABLE webhook_deliveries ADD COLUMN lease_token uuid;

-- The claim visits each subscription's earliest pending rows in write order.
CREATE INDEX webhook_deliveries_pending_seq_idx ON webhook_deliveries (subscription_id, seq)
    WHERE status = 'pending';
