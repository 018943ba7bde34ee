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


async def test_the_chains_density_is_remembered_so_a_new_worker_sizes_its_first_calls(
    conn: asyncpg.Connection,
) -> None:
    seen = await load_adaptive_range(conn, 1, CHAIN)
    assert seen.logs_per_block is None and seen.span_for(25_000) == 2000
    seen.record_density(blocks=100, logs=50_000)  # 500 logs a block
    await save_learned_range(conn, 1, seen)

    restarted = await load_adaptive_range(conn, 1, CHAIN)
    assert restarted.logs_per_block == 500
    assert restarted.span_for(25_000) == 50  # 25,000 logs an answer at most
    restarted.logs_per_block = None  # a window that saw no answer forgets nothing
    await save_learned_range(conn, 1, restarted)
    assert (await load_adaptive_range(conn, 1, CHAIN)).logs_per_block == 500
