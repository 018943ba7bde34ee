-- What the queue of a chain holds, as its window last counted it: the eth_getLogs
-- calls its runnable requests still need, and when. Accepting a request reads this
-- (and the few requests queued since) instead of summing the whole queue, so a POST
-- costs the same with ten or ten thousand requests waiting.
ALTER TABLE chain_state
    ADD COLUMN queue_calls bigint CHECK (queue_calls >= 0),
    ADD COLUMN queue_counted_at timestamptz;
