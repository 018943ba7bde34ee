"""The pool hands out clean connections without a reset round trip per checkout."""

from __future__ import annotations

from indexer.db.pool import create_pool


async def test_a_transaction_left_open_is_rolled_back_when_the_connection_returns(
    database_url: str,
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE leaked (id int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('leaked')") is None
    finally:
        await pool.close()
