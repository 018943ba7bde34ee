"""The learned eth_getLogs span survives from one window (and worker) to the next."""

from __future__ import annotations

import asyncpg

from indexer.chain.errors import RangeHint
from indexer.settings import ChainSettings
from indexer.window.chain_state import load_adaptive_range, save_learned_range

CHAIN = ChainSettings(rpc_url="http://127.0.0.1:8545", max_block_range=2000)  # type: ignore[arg-type]


async def test_learned_range_is_remembered_per_chain(conn: asyncpg.Connection) -> None:
    first = await load_adaptive_range(conn, 1, CHAIN)
    assert first.span == 2000  # nothing learned yet: the configured maximum
    first.record_too_large(2000, RangeHint(suggested=(0, 299)))
    await save_learned_range(conn, 1, first)

    again = await load_adaptive_range(conn, 1, CHAIN)
    assert again.span == 300
    assert (await load_adaptive_range(conn, 10, CHAIN)).span == 2000  # other chains untouched

    smaller = CHAIN.model_copy(update={"max_block_range": 100})
    assert (await load_adaptive_range(conn, 1, smaller)).span == 100
