-- How many logs a block of the chain held in the answers seen lately: a worker that
-- starts (or a window that follows) sizes its first eth_getLogs calls by it, so that
-- one answer's weight in memory is bounded before any answer of its own.
ALTER TABLE chain_state ADD COLUMN learned_logs_per_block double precision
    CHECK (learned_logs_per_block >= 0);
