-- Workspaces, API keys, plans and the append-only credit ledger.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- create_workspace(name, plan, credits) --
-- A new workspace on an existing plan.
INSERT INTO workspaces (name, plan, credits)
VALUES ($1, $2, $3)
RETURNING id, name, plan, credits, backfill_webhooks, created_at;

-- list_workspaces --
-- Every workspace for an operator, oldest first, with how many keys still work.
SELECT w.id, w.name, w.plan, w.credits, w.created_at,
       count(k.id) FILTER (WHERE k.revoked_at IS NULL) AS active_keys
FROM workspaces w
LEFT JOIN api_keys k ON k.workspace_id = w.id
GROUP BY w.id
ORDER BY w.created_at, w.id;

-- create_api_key(workspace_id, key_sha256, prefix, name) --
-- Store a key by its SHA-256 only; returns nothing for an unknown workspace.
INSERT INTO api_keys (workspace_id, key_sha256, prefix, name)
SELECT w.id, $2, $3, $4 FROM workspaces w WHERE w.id = $1
RETURNING id, name, prefix, created_at;

-- list_api_keys(workspace_id) --
-- A workspace's keys, revoked ones included, oldest first (never the hash).
SELECT id, workspace_id, name, prefix, created_at, revoked_at
FROM api_keys
WHERE workspace_id = $1
ORDER BY created_at, id;

-- workspace_exists(workspace_id) --
-- Whether a workspace of that id exists.
SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1);

-- revoke_api_key(key_id, workspace_id) --
-- Revoke a key (only of that workspace, when one is given); a second revoke keeps the
-- first time. The row is locked before it is read, so of two revokes at once one is told
-- `already_revoked`. Returns nothing for an unknown key.
WITH target AS (
    SELECT id, workspace_id, name, prefix, created_at, revoked_at
    FROM api_keys
    WHERE id = $1 AND ($2::uuid IS NULL OR workspace_id = $2)
    FOR UPDATE
), revoked AS (
    UPDATE api_keys k SET revoked_at = now()
    FROM target t
    WHERE k.id = t.id AND t.revoked_at IS NULL
    RETURNING k.id, k.revoked_at
)
SELECT t.id, t.workspace_id, t.name, t.prefix, t.created_at,
       coalesce(r.revoked_at, t.revoked_at) AS revoked_at,
       r.id IS NULL AS already_revoked
FROM target t
LEFT JOIN revoked r ON r.id = t.id;

-- find_api_key(key_sha256) --
-- The workspace and rate limit behind a key's SHA-256 (revoked keys find nothing).
SELECT k.id, k.key_sha256, k.workspace_id, p.api_requests_per_minute
FROM api_keys k
JOIN workspaces w ON w.id = k.workspace_id
JOIN plans p ON p.name = w.plan
WHERE k.key_sha256 = $1 AND k.revoked_at IS NULL;

-- get_workspace(workspace_id) --
-- A workspace as its owner sees it.
SELECT w.id, w.name, w.plan, p.backfill_enabled, p.max_backfill_blocks,
       p.api_requests_per_minute, w.credits, w.backfill_webhooks
FROM workspaces w
JOIN plans p ON p.name = w.plan
WHERE w.id = $1;

-- set_backfill_webhooks(workspace_id, backfill_webhooks) --
-- Whether backfill matches of webhook-enabled subscriptions go to their webhooks.
UPDATE workspaces SET backfill_webhooks = $2 WHERE id = $1 RETURNING id;

-- plan_exists(plan) --
-- Whether a plan of that name exists.
SELECT EXISTS (SELECT 1 FROM plans WHERE name = $1);

-- list_plan_names --
-- Known plans, for error messages.
SELECT name FROM plans ORDER BY name;

-- add_credits(workspace_id, amount) --
-- Top up a workspace; returns the new balance, or nothing for an unknown workspace.
UPDATE workspaces SET credits = credits + $2 WHERE id = $1 RETURNING credits;

-- set_workspace_plan(workspace_id, plan) --
-- Move a workspace to another plan; returns nothing for an unknown workspace.
UPDATE workspaces SET plan = $2 WHERE id = $1 RETURNING id, plan;

-- append_ledger_entry(workspace_id, delta, balance_after, reason, backfill_request_id, window_id, note) --
-- One line of the append-only credit ledger.
INSERT INTO credit_ledger (workspace_id, delta, balance_after, reason, backfill_request_id, window_id, note)
VALUES ($1, $2, $3, $4, $5, $6, $7);
