"""Finding a reorg below the safe head: docs/architecture.md, "Reorgs".

Calls ending in the check zone (the chain's `reorg_zone()` blocks below the safe
head) are verified, and the header of their last block is recorded with the
logs they stored (`chain_blocks`). A window that is about to scan reads again,
in one batch, the newest recorded block the last check found canonical and
every block recorded since: a hash chain, so an unchanged block vouches for
every block below it, and reading the previous call's last block after the new
call was answered checks the link between the two.

When a recorded hash changed, the fork is found by walking down what logfill
holds (recorded headers and the parent hashes they name, the block hashes of
stored logs), newest first, to the
newest block still canonical; everything above it is repaired (`store.reorg`).
A changed block deeper than `max_reorg_depth` below the newest stops the chain
instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from indexer.chain.budget import WindowBudget
from indexer.chain.client import BlockRef, RpcClient
from indexer.chain.errors import NodeBehind
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.errors import LogfillError
from indexer.settings import ChainSettings
from indexer.store.reorg import Fork

WALK_BLOCKS = 32  # blocks whose stored hashes one step of the walk reads again


class DeepReorg(LogfillError):
    """A reorg replaced blocks deeper than the chain's `max_reorg_depth`."""


async def find_fork(
    conn: Connection,
    client: RpcClient,
    chain_id: int,
    chain: ChainSettings,
    budget: WindowBudget,
    safe_head: int,
) -> Fork | None:
    """The reorg below the safe head since the last check, or None. Raises `DeepReorg`
    past the chain's limit, and `NodeBehind` when the node answering lacks a block
    logfill recorded (not a reorg: the next window checks again)."""
    zone = chain.reorg_zone()
    rows = await queries.fetch(conn, "blocks_to_check", chain_id=chain_id, low=safe_head - zone)
    if not rows:
        return None
    recorded = [(row["block_number"], "0x" + row["block_hash"].hex()) for row in rows]
    canonical = await _headers(client, [n for n, _ in recorded], budget)
    changed = [n for n, stored in recorded if canonical[n].hash != stored]
    newest = recorded[0][0]
    if not changed:
        await queries.execute(
            conn,
            "blocks_checked",
            chain_id=chain_id,
            block_number=newest,
            prune_below=safe_head - zone - chain.max_reorg_depth - chain.max_block_range,
        )
        return None
    lowest = min(changed)
    stored = dict(recorded)

    def fork_at(unchanged: int) -> Fork:
        return Fork(unchanged + 1, newest, lowest, stored[lowest], canonical[lowest].hash)

    return await _walk_down(conn, client, chain_id, chain, budget, newest, lowest, fork_at)


async def _walk_down(
    conn: Connection,
    client: RpcClient,
    chain_id: int,
    chain: ChainSettings,
    budget: WindowBudget,
    newest: int,
    changed: int,
    fork_at: Callable[[int], Fork],
) -> Fork:
    """Down from the lowest changed block to the newest block whose stored hashes (its
    recorded header, its stored logs) the chain still has: the repair starts right
    above it, so matches in blocks the reorg left alone stay."""
    limit = newest - chain.max_reorg_depth
    floor = limit - chain.max_block_range  # a call below the limit ends above this
    top = changed
    while top > max(floor, 0):
        bottom = max(floor, 0, top - WALK_BLOCKS)
        rows = await queries.fetch(
            conn, "stored_hashes", chain_id=chain_id, below=top, floor=bottom
        )
        hashes: dict[int, set[str]] = defaultdict(set)
        for row in rows:
            hashes[row["block_number"]].add("0x" + row["block_hash"].hex())
        canonical = await _headers(client, sorted(hashes, reverse=True), budget)
        for number in sorted(hashes, reverse=True):
            if hashes[number] == {canonical[number].hash}:
                return fork_at(number)
            if number < limit:
                raise DeepReorg(_deep(chain_id, chain, newest, number))
        top = bottom
    fork = fork_at(max(floor, 0) - 1)
    if fork.fork_block < limit:
        raise DeepReorg(_deep(chain_id, chain, newest, fork.fork_block))
    return fork


def _deep(chain_id: int, chain: ChainSettings, newest: int, block: int) -> str:
    return (
        f"chain {chain_id}: a reorg replaced block {block}, {newest - block + 1} blocks below "
        f"the newest block scanned ({newest}), deeper than max_reorg_depth "
        f"({chain.max_reorg_depth}); windows stopped, nothing removed. Check the provider, "
        f"then `logfill admin chain resume {chain_id} --rescan-from BLOCK`"
    )


async def _headers(
    client: RpcClient, numbers: list[int], budget: WindowBudget
) -> dict[int, BlockRef]:
    headers = await client.get_headers(numbers, budget)
    missing = sorted(n for n, header in headers.items() if header is None)
    if missing:
        raise NodeBehind(
            f"checking for reorgs: the node answering has no block {missing[0]}, which "
            "logfill scanned (a node behind, or a shorter fork); checking again next window"
        )
    return {n: header for n, header in headers.items() if header is not None}
