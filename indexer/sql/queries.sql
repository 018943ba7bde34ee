-- migration_lock --
-- Serialise migrators: waits for the lock, released at commit or rollback.
SELECT pg_advisory_xact_lock(hashtext('logfill.migrate'));

-- create_migrations_table --
-- The record of applied migrations, with the checksum of each file.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- migrations_table_exists --
-- Whether any migration was ever applied here.
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- list_applied_migrations --
-- Applied migrations in order.
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- record_migration --
-- Remember one applied migration.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- create_workspace --
-- A new workspace on an existing plan.
INSERT INTO workspaces (name, plan, credits)
VALUES ($1, $2, $3)
RETURNING id, name, plan, credits, backfill_webhooks, created_at;

-- create_api_key --
-- Store a key by its SHA-256 only.
INSERT INTO api_keys (workspace_id, key_sha256, prefix) VALUES ($1, $2, $3) RETURNING id;

-- plan_exists --
-- Whether a plan of that name exists.
SELECT EXISTS (SELECT 1 FROM plans WHERE name = $1);

-- list_plan_names --
-- Known plans, for error messages.
SELECT name FROM plans ORDER BY name;

-- add_credits --
-- Top up a workspace; returns the new balance, or nothing for an unknown workspace.
UPDATE workspaces SET credits = credits + $2 WHERE id = $1 RETURNING credits;

-- append_ledger_entry --
-- One line of the append-only credit ledger.
INSERT INTO credit_ledger (workspace_id, delta, balance_after, reason, backfill_request_id, window_id, note)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- set_workspace_plan --
-- Move a workspace to another plan; returns nothing for an unknown workspace.
UPDATE workspaces SET plan = $2 WHERE id = $1 RETURNING id, plan;

-- purge_expired_idempotency_keys --
-- Forget Idempotency-Key records past their expiry.
DELETE FROM idempotency_keys WHERE expires_at < now();

-- load_learned_range --
-- The eth_getLogs span learned for a chain in earlier windows (null if none yet).
SELECT learned_block_range FROM chain_state WHERE chain_id = $1;

-- save_learned_range --
-- Remember the span learned for a chain, for the next window and other workers.
INSERT INTO chain_state (chain_id, learned_block_range, updated_at)
VALUES ($1, $2, now())
ON CONFLICT (chain_id) DO UPDATE
SET learned_block_range = EXCLUDED.learned_block_range, updated_at = now();
