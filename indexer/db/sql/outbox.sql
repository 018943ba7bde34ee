-- Webhook deliveries written by a commit, and read or retried by their owner.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- insert_deliveries(subscription_ids, workspace_ids, backfill_request_ids, payloads, event_counts, first_blocks) --
-- Outbox rows: one webhook POST each, sent by the delivery job.
INSERT INTO webhook_deliveries (subscription_id, workspace_id, backfill_request_id, payload,
                                event_count, first_block)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::integer[],
                     $6::bigint[]);

-- list_deliveries(subscription_id, workspace_id, status, before_seq, limit) --
-- A subscription's webhook deliveries, newest first, optionally of one status.
SELECT id, subscription_id, backfill_request_id, status, event_count, first_block, attempts,
       next_attempt_at, last_attempt_at, last_status_code, last_error, delivered_at,
       created_at, seq
FROM webhook_deliveries
WHERE subscription_id = $1 AND workspace_id = $2
  AND ($3::text IS NULL OR status = $3)
  AND ($4::bigint IS NULL OR seq < $4)
ORDER BY seq DESC
LIMIT $5;

-- retry_delivery(delivery_id, workspace_id) --
-- Send a dead delivery again from attempt one (the delivery job picks it up), only while
-- its subscription has a webhook that is not disabled: otherwise it would die at once.
UPDATE webhook_deliveries d
SET status = 'pending', attempts = 0, next_attempt_at = now(), leased_until = NULL
FROM subscriptions s
WHERE d.id = $1 AND d.workspace_id = $2 AND d.status = 'dead'
  AND s.id = d.subscription_id AND s.webhook_url IS NOT NULL AND s.webhook_disabled_at IS NULL
RETURNING d.id, d.subscription_id, d.backfill_request_id, d.status, d.event_count,
          d.first_block, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status_code,
          d.last_error, d.delivered_at, d.created_at, d.seq;

-- delivery_retry_state(delivery_id, workspace_id) --
-- Why a workspace's delivery cannot be retried: its status, and its subscription's webhook.
SELECT d.status, d.subscription_id, s.webhook_url IS NOT NULL AS has_webhook,
       s.webhook_disabled_at IS NOT NULL AS webhook_disabled, s.webhook_disabled_reason
FROM webhook_deliveries d
JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.id = $1 AND d.workspace_id = $2;
