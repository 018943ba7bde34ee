"""What logfill keeps about each chain between windows (`chain_state`): the window
lease, the heads last read, and the eth_getLogs span learned.

The lease makes one worker the chain's leader for one tick: taken at the start
of a window, renewed (and checked: the fence) by every commit, and held until a
tick after the tick's first window started when it ends. A window may follow
within the same tick once the last one has ended (a request became runnable
meanwhile), spending what the tick's budget has left. See docs/architecture.md,
"One budget per tick".
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.chain.client import Heads
from indexer.chain.span import AdaptiveRange
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.settings import ChainSettings
from indexer.store.commit import LeaseLost


@dataclass(frozen=True)
class Lease:
    """A window's right to run: the CU it may spend, and the heads it may use without
    reading them (a window following another in the same tick)."""

    budget_cu: int
    heads: Heads | None = None


async def take_lease(
    conn: Connection, chain_id: int, worker: str, chain: ChainSettings
) -> Lease | None:
    """Become the chain's window leader for a new tick, if no one else is."""
    started = await queries.fetchval(
        conn,
        "take_window_lease",
        chain_id=chain_id,
        worker=worker,
        lease_seconds=chain.lease_seconds,
        tick_seconds=chain.tick_seconds,
    )
    return None if started is None else Lease(chain.window_budget_cu)


async def follow_lease(
    conn: Connection, chain_id: int, worker: str, chain: ChainSettings
) -> Lease | None:
    """Run a window after the chain's last one within the same tick, if it has ended
    and the tick's budget has at least one eth_getLogs call left."""
    row = await queries.fetchrow(
        conn,
        "follow_window_lease",
        chain_id=chain_id,
        worker=worker,
        lease_seconds=chain.lease_seconds,
        tick_seconds=chain.tick_seconds,
        budget_cu=chain.window_budget_cu,
        min_cu=chain.cu_cost("eth_getLogs"),
    )
    if row is None:
        return None
    heads = Heads(row["head"], row["safe_head"]) if row["heads_fresh"] else None
    return Lease(row["budget_cu"], heads)


async def renew_lease(conn: Connection, chain_id: int, worker: str, chain: ChainSettings) -> None:
    """The fence of every commit: still the leader? Then hold the chain a while longer."""
    renewed = await queries.fetchval(
        conn,
        "renew_window_lease",
        chain_id=chain_id,
        worker=worker,
        lease_seconds=chain.lease_seconds,
    )
    if renewed is None:
        raise LeaseLost(f"chain {chain_id}: another worker took the window lease")


async def end_lease(
    conn: Connection, chain_id: int, worker: str, chain: ChainSettings, spent_cu: int
) -> None:
    """Keep the chain until a tick after the tick's first window started, and count
    what this window spent against the tick's budget."""
    await queries.execute(
        conn,
        "end_window_lease",
        chain_id=chain_id,
        worker=worker,
        tick_seconds=chain.tick_seconds,
        spent_cu=spent_cu,
    )


async def save_heads(conn: Connection, chain_id: int, heads: Heads) -> None:
    await queries.execute(
        conn, "save_heads", chain_id=chain_id, head=heads.head, safe_head=heads.safe_head
    )


async def load_adaptive_range(
    conn: Connection, chain_id: int, chain: ChainSettings
) -> AdaptiveRange:
    """Start from the span and density learned earlier, the span capped by today's
    configured maximum."""
    learned = await queries.fetchrow(conn, "load_learned_range", chain_id=chain_id)
    if learned is None:
        return AdaptiveRange(max_span=chain.max_block_range)
    return AdaptiveRange(
        max_span=chain.max_block_range,
        span=learned["learned_block_range"] or 0,
        logs_per_block=learned["learned_logs_per_block"],
    )


async def save_learned_range(conn: Connection, chain_id: int, ranges: AdaptiveRange) -> None:
    await queries.execute(
        conn,
        "save_learned_range",
        chain_id=chain_id,
        span=ranges.span,
        logs_per_block=ranges.logs_per_block,
    )
