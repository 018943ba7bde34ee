"""What logfill remembers about each chain between windows."""

from __future__ import annotations

from indexer.db import Connection
from indexer.queries import QUERIES
from indexer.ranges import AdaptiveRange
from indexer.settings import ChainSettings


async def load_adaptive_range(
    conn: Connection, chain_id: int, chain: ChainSettings
) -> AdaptiveRange:
    """Start from the span learned earlier, capped by today's configured maximum."""
    learned: int | None = await conn.fetchval(QUERIES["load_learned_range"], chain_id)
    return AdaptiveRange(max_span=chain.max_block_range, span=learned or 0)


async def save_learned_range(conn: Connection, chain_id: int, ranges: AdaptiveRange) -> None:
    await conn.execute(QUERIES["save_learned_range"], chain_id, ranges.span)
