"""Maintenance forgets the log cache's fragments that nothing used for a while."""

from __future__ import annotations

import asyncpg

from indexer.db.pool import create_pool
from indexer.worker import maintenance


async def test_fragments_unused_for_the_retention_are_forgotten(
    conn: asyncpg.Connection, database_url: str
) -> None:
    insert = (
        "INSERT INTO log_fragments (chain_id, address, topics, covered, used_at)"
        " VALUES (1, $1, '*', '{[1,10]}', now() - make_interval(days => $2))"
    )
    await conn.execute(insert, "0x" + "aa" * 20, 3)
    await conn.execute(insert, "0x" + "bb" * 20, 1)
    pool = await create_pool(database_url, min_size=1, max_size=2, timeout=10)
    try:
        await maintenance(pool, log_cache_days=2)
    finally:
        await pool.close()
    kept = await conn.fetch("SELECT address FROM log_fragments")
    assert [r["address"] for r in kept] == ["0x" + "bb" * 20]
