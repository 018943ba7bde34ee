-- Faster window commits. A match's log id always comes from the logs table in the
-- statement that inserts the match, and logs are never deleted, so the per-row
-- foreign-key check bought nothing and cost a fifth of the commit time
-- (bench/backfill_e2e.py). No query looks logs up by block number alone.
ALTER TABLE matches DROP CONSTRAINT matches_log_id_fkey;
DROP INDEX logs_block_idx;
