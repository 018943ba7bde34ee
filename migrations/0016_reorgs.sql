-- Reorg detection and repair (docs/architecture.md, "Reorgs").
--
-- `chain_blocks`: the header of the last block of each verified eth_getLogs call
-- near the safe head, recorded in the commit that stored the call's logs. Each
-- window that scans compares the recent ones with the chain's canonical headers;
-- a block whose hash changed means the blocks from some point on were replaced.
CREATE TABLE chain_blocks (
    chain_id     bigint NOT NULL CHECK (chain_id > 0),
    block_number bigint NOT NULL CHECK (block_number >= 0),
    block_hash   bytea NOT NULL CHECK (length(block_hash) = 32),
    parent_hash  bytea NOT NULL CHECK (length(parent_hash) = 32),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, block_number)
);

-- `checked_block`: the newest recorded block the last check found canonical. The next
-- check reads it again with every block recorded since, so that the link of each
-- newly scanned call to the one before is verified after both were read.
-- `halted_reason`: a reorg deeper than the chain's `max_reorg_depth`; the chain's
-- windows stop until an operator resumes it (`logfill admin chain resume`).
ALTER TABLE chain_state
    ADD COLUMN checked_block bigint,
    ADD COLUMN halted_reason text,
    ADD COLUMN halted_at timestamptz,
    ADD CONSTRAINT chain_state_halted_has_time CHECK ((halted_reason IS NULL) = (halted_at IS NULL));

-- Every repaired reorg, for operators.
CREATE TABLE reorgs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id         bigint NOT NULL CHECK (chain_id > 0),
    window_id        bigint,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    fork_block       bigint NOT NULL CHECK (fork_block >= 0),  -- the first replaced block
    newest_block     bigint NOT NULL,  -- the newest block stored before the repair
    depth            bigint NOT NULL CHECK (depth >= 1),
    stored_hash      bytea,  -- the hash logfill held at the block the check found changed
    canonical_hash   bytea,  -- and the chain's hash there now
    matches_removed  bigint NOT NULL DEFAULT 0 CHECK (matches_removed >= 0),
    requests_rewound integer NOT NULL DEFAULT 0 CHECK (requests_rewound >= 0),
    source           text NOT NULL DEFAULT 'window' CHECK (source IN ('window', 'operator'))
);
CREATE INDEX reorgs_chain_idx ON reorgs (chain_id, detected_at DESC);

-- Matches of orphaned blocks, moved out of `matches` (a new canonical log may take
-- the same place) with their log as it was, kept for audit. Each was refunded.
CREATE TABLE removed_matches (
    subscription_id     uuid NOT NULL,
    workspace_id        uuid NOT NULL,
    block_number        bigint NOT NULL,
    log_index           integer NOT NULL,
    backfill_request_id uuid,
    reorg_id            bigint NOT NULL REFERENCES reorgs (id),
    block_hash          bytea NOT NULL,
    transaction_hash    bytea NOT NULL,
    transaction_index   integer NOT NULL,
    address             bytea NOT NULL,
    topics              bytea[] NOT NULL,
    data                bytea NOT NULL,
    matched_at          timestamptz NOT NULL,
    removed_at          timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/subscriptions/{id}/removed-events reads them by (reorg, place).
CREATE INDEX removed_matches_subscription_idx
    ON removed_matches (subscription_id, reorg_id, block_number, log_index);

-- A request's matches that a reorg removed (and refunded); its other figures keep
-- what was found, charged and scanned.
ALTER TABLE backfill_requests
    ADD COLUMN matches_removed bigint NOT NULL DEFAULT 0 CHECK (matches_removed >= 0);

ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_reason_check;
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_reason_check
    CHECK (reason IN ('initial', 'top_up', 'backfill_matches', 'adjustment', 'reorg_refund'));

-- A deleted subscription's removed matches go with it, like its matches.
CREATE OR REPLACE FUNCTION delete_subscription_matches() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM matches WHERE subscription_id IN (SELECT id FROM gone);
    DELETE FROM removed_matches WHERE subscription_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
