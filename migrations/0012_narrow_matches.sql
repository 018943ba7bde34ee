-- Storage that costs PostgreSQL less per match (bench/side_by_side.py).
--
-- A log is identified by its place on its chain, (chain_id, block_number, log_index):
-- nothing beyond the safe head is ever stored, so a place holds one log. A match is
-- a narrow row keyed by (subscription, place): storing one needs no join back to
-- `logs`, no surrogate ids and one index per table instead of three and two. The
-- subscription's foreign key (a check per inserted row) becomes a trigger that
-- deletes a deleted subscription's matches once per statement.
--
-- Upgrading in place: rows that would collide under the new keys (impossible for
-- data this code stored) keep the oldest.

DELETE FROM matches m
USING matches k
WHERE k.subscription_id = m.subscription_id AND k.block_number = m.block_number
  AND k.log_index = m.log_index AND k.id < m.id;

DELETE FROM logs l
USING logs k
WHERE k.chain_id = l.chain_id AND k.block_number = l.block_number
  AND k.log_index = l.log_index AND k.id < l.id;

ALTER TABLE matches
    DROP CONSTRAINT matches_subscription_id_fkey,
    DROP CONSTRAINT matches_pkey,
    DROP COLUMN id,
    DROP COLUMN log_id;
DROP INDEX IF EXISTS matches_subscription_order_idx;
-- Stored events in chain order (keyset pagination) and the conflict key, in one index.
ALTER TABLE matches ADD PRIMARY KEY (subscription_id, block_number, log_index);

ALTER TABLE logs
    DROP CONSTRAINT logs_pkey,
    DROP CONSTRAINT logs_chain_id_block_hash_log_index_key,
    DROP COLUMN id;
ALTER TABLE logs ADD PRIMARY KEY (chain_id, block_number, log_index);

-- A deleted subscription's matches go with it. The statement-level trigger runs after
-- the cascade to its requests, which waits for a commit holding them; its DELETE then
-- takes a fresh snapshot and sees what that commit stored.
CREATE FUNCTION delete_subscription_matches() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM matches WHERE subscription_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

CREATE TRIGGER subscriptions_delete_matches
    AFTER DELETE ON subscriptions
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_subscription_matches();
