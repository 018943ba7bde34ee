-- The chain's log cache: which blocks each filter fragment has been fetched for
-- (indexer/chain/fragments.py). The logs themselves are the `logs` table, stored once
-- per chain for the matches; a request whose filter's fragments are all covered in a
-- block is served from there at no CU. `used_at` is when a window last extended or
-- read the row; the worker's maintenance drops rows unused for `log_cache_days`.
CREATE TABLE log_fragments (
    chain_id bigint NOT NULL CHECK (chain_id > 0),
    address  text NOT NULL,  -- 0x-hex, or '*' for any address
    topics   text NOT NULL,  -- positions joined by '/', each 0x-hex or '*'; '' for none
    covered  int8multirange NOT NULL,
    used_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, address, topics)
);
