-- Sending deliveries: claiming due rows under a lease, recording outcomes.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- claim_deliveries(limit, strict_per_subscription, independent_per_subscription, lease_seconds) --
-- Lease up to $1 due deliveries for this worker, oldest due first, following each
-- subscription's `webhook_ordering`:
-- - strict: the rows go out in write (block) order. Only the subscription's first $2
--   pending rows (by seq) may be in flight, and a row is taken only when due and not
--   leased, so with $2 = 1 nothing overtakes an earlier row that is in flight or
--   waiting for its retry.
-- - independent: any due row that is not leased, oldest due first, while fewer than
--   $3 rows of the subscription are in flight (all workers together). A row waiting
--   for its retry holds back nothing.
-- Subscriptions with pending rows are found with a skip scan of the partial
-- (subscription_id, seq) index, and each one's rows with a short index probe (its
-- head by seq; its due rows by next_attempt_at; its leased rows), so a backlog of a
-- million rows in one subscription costs a few probes, not a million. FOR UPDATE
-- SKIP LOCKED re-checks the lease on the row itself: two workers never claim the
-- same row, even when both saw it free. Each claimed row gets a fresh lease token.
WITH RECURSIVE pending_subscriptions AS (
    (SELECT subscription_id FROM webhook_deliveries
     WHERE status = 'pending' ORDER BY subscription_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.subscription_id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.subscription_id > p.subscription_id
            ORDER BY d.subscription_id LIMIT 1)
    FROM pending_subscriptions p
    WHERE p.subscription_id IS NOT NULL
), strict_heads AS (
    SELECT head.id, head.next_attempt_at
    FROM pending_subscriptions p
    JOIN subscriptions s ON s.id = p.subscription_id AND s.webhook_ordering = 'strict'
    CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at, d.leased_until
        FROM webhook_deliveries d
        WHERE d.subscription_id = p.subscription_id AND d.status = 'pending'
        ORDER BY d.seq
        LIMIT $2
    ) head
    WHERE head.next_attempt_at <= now()
      AND (head.leased_until IS NULL OR head.leased_until < now())
), independent_due AS (
    SELECT due.id, due.next_attempt_at
    FROM pending_subscriptions p
    JOIN subscriptions s ON s.id = p.subscription_id AND s.webhook_ordering = 'independent'
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM webhook_deliveries f
        WHERE f.subscription_id = p.subscription_id AND f.status = 'pending'
          AND f.leased_until IS NOT NULL AND f.leased_until >= now()
    ) flying
    CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at
        FROM webhook_deliveries d
        WHERE d.subscription_id = p.subscription_id AND d.status = 'pending'
          AND d.next_attempt_at <= now()
          AND (d.leased_until IS NULL OR d.leased_until < now())
        ORDER BY d.next_attempt_at, d.seq
        LIMIT greatest($3 - flying.n, 0)
    ) due
), candidates AS (
    SELECT id, next_attempt_at FROM strict_heads
    UNION ALL
    SELECT id, next_attempt_at FROM independent_due
    ORDER BY next_attempt_at
    LIMIT $1
), locked AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM candidates)
      AND d.status = 'pending'
      AND d.next_attempt_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now())
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET leased_until = now() + make_interval(secs => $4),
    lease_token = gen_random_uuid(),
    attempts = d.attempts + 1,
    last_attempt_at = now()
FROM locked, subscriptions s
WHERE d.id = locked.id AND s.id = d.subscription_id
RETURNING d.id, d.subscription_id, d.lease_token, d.attempts, d.payload, d.event_count,
          d.created_at, s.webhook_url,
          array_remove(ARRAY[s.webhook_secret,
                             CASE WHEN s.previous_secret_expires_at > now()
                                  THEN s.previous_webhook_secret END], NULL) AS secrets,
          s.webhook_disabled_reason,
          s.webhook_disabled_at IS NOT NULL AS webhook_disabled;

-- record_delivery_outcomes(ids, lease_tokens, statuses, retry_ins, status_codes, errors, disable_reasons) --
-- The outcomes of attempts, one array element each; a row is updated only while the
-- lease it was claimed with is still ours (token and time), so a worker that lost
-- it cannot overwrite a newer outcome. A 410 also disables the subscription's
-- webhook. Returns the ids that were recorded.
WITH outcome AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[], $5::integer[],
                         $6::text[], $7::text[])
        AS o(id, lease_token, status, retry_in, status_code, error, disable_reason)
), recorded AS (
    UPDATE webhook_deliveries d
    SET status = o.status,
        next_attempt_at = CASE WHEN o.status = 'pending'
                               THEN now() + make_interval(secs => o.retry_in)
                               ELSE d.next_attempt_at END,
        delivered_at = CASE WHEN o.status = 'delivered' THEN now() END,
        leased_until = NULL,
        lease_token = NULL,
        last_status_code = o.status_code,
        last_error = o.error
    FROM outcome o
    WHERE d.id = o.id AND d.lease_token = o.lease_token AND d.leased_until > now()
      AND d.status = 'pending'
    RETURNING d.id, d.subscription_id, o.disable_reason
), disabled AS (
    UPDATE subscriptions s
    SET webhook_disabled_at = now(), webhook_disabled_reason = r.disable_reason,
        updated_at = now()
    FROM recorded r
    WHERE s.id = r.subscription_id AND r.disable_reason IS NOT NULL
      AND s.webhook_disabled_at IS NULL
)
SELECT id FROM recorded;
