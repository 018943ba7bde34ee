-- Customers' subscriptions: filters, webhook endpoint and secrets, coverage, stored events.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- insert_subscription(workspace_id, chain_id, name, addresses, topics, events, event_abis, webhook_url, webhook_secret, webhook_ordering, stored_events) --
-- A new subscription; the secret is returned here and by a rotation only.
INSERT INTO subscriptions (workspace_id, chain_id, name, addresses, topics, events, event_abis,
                           webhook_url, webhook_secret, webhook_ordering, stored_events)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
          webhook_secret, webhook_disabled_at, webhook_disabled_reason, webhook_ordering,
          stored_events, created_at, updated_at;

-- get_subscription(subscription_id, workspace_id) --
-- One subscription of a workspace.
SELECT id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
       webhook_secret, webhook_disabled_at, webhook_disabled_reason, webhook_ordering,
       stored_events, created_at, updated_at
FROM subscriptions
WHERE id = $1 AND workspace_id = $2;

-- lock_subscription(subscription_id, workspace_id) --
-- One subscription of a workspace, locked for a read-modify-write (PATCH, rotation).
SELECT id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
       webhook_secret, webhook_disabled_at, webhook_disabled_reason, webhook_ordering,
       stored_events, created_at, updated_at, previous_webhook_secret, previous_secret_expires_at
FROM subscriptions
WHERE id = $1 AND workspace_id = $2
FOR UPDATE;

-- list_subscriptions(workspace_id, after_created_at, after_id, limit) --
-- A workspace's subscriptions, oldest first, after a keyset cursor (null: first page).
SELECT id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
       webhook_secret, webhook_disabled_at, webhook_disabled_reason, webhook_ordering,
       stored_events, created_at, updated_at
FROM subscriptions
WHERE workspace_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- update_subscription(subscription_id, workspace_id, name, addresses, topics, events, event_abis, webhook_url, webhook_secret, previous_webhook_secret, previous_secret_expires_at, webhook_disabled_at, webhook_disabled_reason, webhook_ordering, stored_events) --
-- Write a subscription's new state (worked out in Python from the locked row).
UPDATE subscriptions
SET name = $3, addresses = $4, topics = $5, events = $6, event_abis = $7,
    webhook_url = $8, webhook_secret = $9, previous_webhook_secret = $10,
    previous_secret_expires_at = $11, webhook_disabled_at = $12,
    webhook_disabled_reason = $13, webhook_ordering = $14, stored_events = $15,
    updated_at = now()
WHERE id = $1 AND workspace_id = $2
RETURNING id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
          webhook_secret, webhook_disabled_at, webhook_disabled_reason, webhook_ordering,
          stored_events, created_at, updated_at;

-- rotate_webhook_secret(subscription_id, workspace_id, new_secret, grace_seconds) --
-- New signing secret; the old one keeps signing for `$4` seconds (receivers switch over).
UPDATE subscriptions
SET previous_webhook_secret = webhook_secret,
    previous_secret_expires_at = now() + make_interval(secs => $4),
    webhook_secret = $3,
    updated_at = now()
WHERE id = $1 AND workspace_id = $2 AND webhook_url IS NOT NULL
RETURNING id, chain_id, name, addresses, topics, events, event_abis, webhook_url,
          webhook_secret, webhook_disabled_at, webhook_disabled_reason, webhook_ordering,
          stored_events, created_at, updated_at;

-- reset_subscription_coverage(subscription_id) --
-- A new filter: blocks scanned with the old one say nothing about the new one.
DELETE FROM subscription_coverage WHERE subscription_id = $1;

-- delete_subscription(subscription_id, workspace_id) --
-- Delete a subscription (its requests, matches and deliveries cascade).
DELETE FROM subscriptions WHERE id = $1 AND workspace_id = $2 RETURNING id;

-- subscription_exists(subscription_id, workspace_id) --
-- Whether a workspace owns this subscription (list endpoints answer 404 otherwise).
SELECT chain_id, event_abis FROM subscriptions WHERE id = $1 AND workspace_id = $2;

-- list_subscription_events(subscription_id, chain_id, after_block, after_log_index, to_block, limit) --
-- Stored matches of a subscription in chain order, after a keyset cursor, up to a block.
SELECT m.block_number, m.log_index, m.backfill_request_id, m.created_at,
       l.block_hash, l.transaction_hash, l.transaction_index, l.address, l.topics, l.data
FROM matches m
JOIN logs l ON l.chain_id = $2 AND l.block_number = m.block_number AND l.log_index = m.log_index
WHERE m.subscription_id = $1 AND (m.block_number, m.log_index) > ($3, $4)
  AND m.block_number <= $5
ORDER BY m.block_number, m.log_index
LIMIT $6;

-- list_subscription_events_desc(subscription_id, chain_id, before_block, before_log_index, from_block, limit) --
-- Stored matches of a subscription newest first, before a keyset cursor, down to a block.
SELECT m.block_number, m.log_index, m.backfill_request_id, m.created_at,
       l.block_hash, l.transaction_hash, l.transaction_index, l.address, l.topics, l.data
FROM matches m
JOIN logs l ON l.chain_id = $2 AND l.block_number = m.block_number AND l.log_index = m.log_index
WHERE m.subscription_id = $1 AND (m.block_number, m.log_index) < ($3, $4)
  AND m.block_number >= $5
ORDER BY m.block_number DESC, m.log_index DESC
LIMIT $6;

-- list_removed_events(subscription_id, after_reorg, after_block, after_log_index, limit) --
-- A subscription's matches that reorgs removed (kept for audit), by reorg, then in
-- chain order, after a keyset cursor.
SELECT subscription_id, block_number, log_index, backfill_request_id, reorg_id, block_hash,
       transaction_hash, transaction_index, address, topics, data,
       matched_at AS created_at, removed_at
FROM removed_matches
WHERE subscription_id = $1 AND (reorg_id, block_number, log_index) > ($2, $3, $4)
ORDER BY reorg_id, block_number, log_index
LIMIT $5;
