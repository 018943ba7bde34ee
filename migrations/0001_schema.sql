-- logfill schema v1: the storage sketch of DESIGN.md, with every invariant
-- PostgreSQL can hold on its own. Applied in one transaction by `logfill migrate`.

-- Plans decide whether a workspace may backfill and how wide one request may be.
CREATE TABLE plans (
    name                  text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    backfill_enabled      boolean NOT NULL,
    max_backfill_blocks   bigint CHECK (max_backfill_blocks > 0),
    api_requests_per_minute integer NOT NULL DEFAULT 600 CHECK (api_requests_per_minute > 0),
    CHECK (NOT backfill_enabled OR max_backfill_blocks IS NOT NULL)
);

INSERT INTO plans (name, backfill_enabled, max_backfill_blocks, api_requests_per_minute) VALUES
    ('free',       false, NULL,          120),
    ('pro',        true,  5000000,       600),
    ('enterprise', true,  1000000000,    3000);

CREATE TABLE workspaces (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan              text NOT NULL REFERENCES plans (name),
    credits           bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
    backfill_webhooks boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is kept; `prefix` lets an operator recognise a key.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key_sha256   bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id);

-- A subscription: chain + filter + optional webhook. `topics` is positional:
-- a JSON array whose items are null (any) or an array of 32-byte hex strings (OR).
-- `event_abis` holds the ABI entries derived from `events`, for decoding.
CREATE TABLE subscriptions (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id            uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    chain_id                bigint NOT NULL CHECK (chain_id > 0),
    name                    text CHECK (length(name) <= 200),
    addresses               bytea[] NOT NULL DEFAULT '{}',
    topics                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(topics) = 'array'),
    events                  text[] NOT NULL DEFAULT '{}',
    event_abis              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(event_abis) = 'array'),
    webhook_url             text CHECK (webhook_url ~ '^https?://'),
    webhook_secret          text CHECK (webhook_secret LIKE 'whsec\_%'),
    previous_webhook_secret text CHECK (previous_webhook_secret LIKE 'whsec\_%'),
    previous_secret_expires_at timestamptz,
    webhook_disabled_at     timestamptz,
    webhook_disabled_reason text,
    stored_events           boolean NOT NULL DEFAULT true,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL)),
    CHECK (cardinality(addresses) <= 10000)
);
CREATE INDEX subscriptions_workspace_idx ON subscriptions (workspace_id, created_at, id);
CREATE INDEX subscriptions_chain_idx ON subscriptions (chain_id);

-- Which blocks each subscription has had scanned (merged ranges, inclusive ends).
CREATE TABLE subscription_coverage (
    subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    covered         int8multirange NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backfill_requests (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    subscription_id     uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    chain_id            bigint NOT NULL CHECK (chain_id > 0),
    status              text NOT NULL DEFAULT 'queued' CHECK (status IN (
                            'queued', 'processing', 'paused_credits', 'paused',
                            'completed', 'completed_noop', 'cancelled', 'failed')),
    from_block          bigint NOT NULL CHECK (from_block >= 0),
    to_block            bigint NOT NULL,
    block_order         text NOT NULL DEFAULT 'asc' CHECK (block_order IN ('asc', 'desc')),
    -- The next block to scan; null exactly when the request is terminal.
    cursor              bigint,
    rescan              boolean NOT NULL DEFAULT false,
    redeliver           boolean NOT NULL DEFAULT false,
    labels              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    blocks_scanned      bigint NOT NULL DEFAULT 0 CHECK (blocks_scanned >= 0),
    matches             bigint NOT NULL DEFAULT 0 CHECK (matches >= 0),
    new_matches         bigint NOT NULL DEFAULT 0 CHECK (new_matches >= 0),
    duplicate_matches   bigint NOT NULL DEFAULT 0 CHECK (duplicate_matches >= 0),
    credits_charged     bigint NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    cu_spent            bigint NOT NULL DEFAULT 0 CHECK (cu_spent >= 0),
    windows             integer NOT NULL DEFAULT 0 CHECK (windows >= 0),
    error               text,
    last_transient_error text,
    estimated_start_at  timestamptz,
    estimated_finish_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (from_block <= to_block),
    CHECK (blocks_scanned <= to_block - from_block + 1),
    CHECK (cursor IS NULL OR cursor BETWEEN from_block AND to_block),
    CHECK ((cursor IS NULL) = (status IN ('completed', 'completed_noop', 'cancelled', 'failed'))),
    CHECK ((finished_at IS NOT NULL) = (status IN ('completed', 'completed_noop', 'cancelled', 'failed')))
);
-- The window's queue: runnable requests of a chain, FIFO.
CREATE INDEX backfill_requests_runnable_idx ON backfill_requests (chain_id, created_at, id)
    WHERE status IN ('queued', 'processing', 'paused_credits');
-- A subscription's history, newest first.
CREATE INDEX backfill_requests_subscription_idx
    ON backfill_requests (subscription_id, created_at DESC, id DESC);
CREATE INDEX backfill_requests_workspace_idx ON backfill_requests (workspace_id, status);

-- Idempotency-Key records: claimed in the transaction that creates the request.
-- response_status is null while the first request is still being handled.
CREATE TABLE idempotency_keys (
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    idempotency_key     text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    fingerprint         bytea NOT NULL CHECK (length(fingerprint) = 32),
    response_status     integer CHECK (response_status BETWEEN 100 AND 599),
    response_headers    jsonb,
    response_body       bytea,
    backfill_request_id uuid REFERENCES backfill_requests (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

-- One row per log, whoever matched it. Identity: (chain_id, block_hash, log_index).
CREATE TABLE logs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id          bigint NOT NULL CHECK (chain_id > 0),
    block_number      bigint NOT NULL CHECK (block_number >= 0),
    block_hash        bytea NOT NULL CHECK (length(block_hash) = 32),
    log_index         integer NOT NULL CHECK (log_index >= 0),
    transaction_hash  bytea NOT NULL CHECK (length(transaction_hash) = 32),
    transaction_index integer NOT NULL CHECK (transaction_index >= 0),
    address           bytea NOT NULL CHECK (length(address) = 20),
    topics            bytea[] NOT NULL CHECK (cardinality(topics) <= 4),
    data              bytea NOT NULL,
    UNIQUE (chain_id, block_hash, log_index)
);
CREATE INDEX logs_block_idx ON logs (chain_id, block_number);

-- One match per (subscription, log); it is stored and charged once.
CREATE TABLE matches (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id     uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    log_id              bigint NOT NULL REFERENCES logs (id),
    block_number        bigint NOT NULL CHECK (block_number >= 0),
    log_index           integer NOT NULL CHECK (log_index >= 0),
    backfill_request_id uuid REFERENCES backfill_requests (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, log_id)
);
-- Stored events, oldest first, with keyset pagination.
CREATE INDEX matches_subscription_order_idx
    ON matches (subscription_id, block_number, log_index, id);
CREATE INDEX matches_log_idx ON matches (log_id);

-- Append-only: every change of a workspace's balance, with the balance after it.
-- Ids of requests and windows are kept as history, not as foreign keys, so that
-- deleting a subscription never rewrites the ledger.
CREATE TABLE credit_ledger (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces (id),
    delta               bigint NOT NULL CHECK (delta <> 0),
    balance_after       bigint NOT NULL CHECK (balance_after >= 0),
    reason              text NOT NULL CHECK (reason IN (
                            'initial', 'top_up', 'backfill_matches', 'adjustment')),
    backfill_request_id uuid,
    window_id           bigint,
    note                text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_ledger_workspace_idx ON credit_ledger (workspace_id, id);

CREATE FUNCTION credit_ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER credit_ledger_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON credit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION credit_ledger_is_append_only();

-- The webhook outbox: one row per POST (a batch of matches). `id` is the
-- Standard Webhooks `webhook-id`, the same on every attempt.
CREATE TABLE webhook_deliveries (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subscription_id     uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    backfill_request_id uuid REFERENCES backfill_requests (id) ON DELETE SET NULL,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN (
                            'pending', 'delivered', 'dead')),
    payload             jsonb NOT NULL,
    event_count         integer NOT NULL CHECK (event_count > 0),
    first_block         bigint NOT NULL,
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    leased_until        timestamptz,
    last_attempt_at     timestamptz,
    last_status_code    integer,
    last_error          text,
    delivered_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- The delivery job's claim: due pending rows, oldest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription_idx
    ON webhook_deliveries (subscription_id, status, created_at, id);

-- Per chain: the last head seen, the safe head, the range learned from the
-- provider, and the lease that makes one worker the window's leader per tick.
CREATE TABLE chain_state (
    chain_id          bigint PRIMARY KEY CHECK (chain_id > 0),
    head              bigint CHECK (head >= 0),
    safe_head         bigint CHECK (safe_head >= 0),
    head_updated_at   timestamptz,
    learned_block_range integer CHECK (learned_block_range > 0),
    leader            text,
    lease_expires_at  timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (safe_head IS NULL OR head IS NULL OR safe_head <= head)
);

-- The audit trail: one row per window (tick) per chain.
CREATE TABLE windows (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id        bigint NOT NULL CHECK (chain_id > 0),
    worker          text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    budget_cu       integer NOT NULL CHECK (budget_cu >= 0),
    cu_spent        integer NOT NULL DEFAULT 0 CHECK (cu_spent >= 0),
    calls           integer NOT NULL DEFAULT 0 CHECK (calls >= 0),
    errors          integer NOT NULL DEFAULT 0 CHECK (errors >= 0),
    requests_served integer NOT NULL DEFAULT 0 CHECK (requests_served >= 0),
    new_matches     bigint NOT NULL DEFAULT 0 CHECK (new_matches >= 0),
    head            bigint,
    safe_head       bigint,
    error           text,
    CHECK (cu_spent <= budget_cu)
);
CREATE INDEX windows_chain_idx ON windows (chain_id, started_at DESC);
