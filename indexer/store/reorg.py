"""Repairing a reorg, in one transaction: docs/architecture.md, "Reorgs".

From the fork block on, logfill holds nothing of the old chain any more: the
matches there move to `removed_matches` (kept for audit, out of listings), each
one's credit is refunded through the ledger, each subscription that receives
webhooks gets a signed `backfill.matches.removed` delivery carrying the removed
events in the shape `backfill.matches` delivered them (same ids), the logs,
recorded headers and coverage there go, and the requests that had scanned
those blocks get them back to scan again: the canonical matches are then
stored, charged and delivered once, like any others.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

import asyncpg
import structlog

from indexer.chain.logs import Log
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.errors import InvalidInput, NotFound
from indexer.outbox.bodies import EventDecoder
from indexer.outbox.enqueue import MATCHES_REMOVED, Batch, OutboxLimits, enqueue
from indexer.store.credits import lock_balances

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Fork:
    """Blocks from `fork_block` on were replaced; `newest_block` is the newest block
    logfill had recorded, and at `changed_block` its hash and the chain's differ."""

    fork_block: int
    newest_block: int
    changed_block: int
    stored_hash: str | None = None  # None: an operator named the fork block
    canonical_hash: str | None = None

    @property
    def depth(self) -> int:
        return max(1, self.newest_block - self.fork_block + 1)


@dataclass(frozen=True)
class Repair:
    reorg_id: int
    fork: Fork
    matches_removed: int
    credits_refunded: int
    requests_rewound: int
    deliveries: int


async def repair_reorg(
    conn: Connection,
    chain_id: int,
    fork: Fork,
    limits: OutboxLimits,
    *,
    window_id: int | None = None,
    source: Literal["window", "operator"] = "window",
) -> Repair:
    """Undo everything logfill holds of the chain from `fork.fork_block` on, in the
    caller's transaction."""
    reorg_id: int = await queries.fetchval(
        conn,
        "open_reorg",
        chain_id=chain_id,
        window_id=window_id,
        fork_block=fork.fork_block,
        newest_block=fork.newest_block,
        stored_hash=_bytes(fork.stored_hash),
        canonical_hash=_bytes(fork.canonical_hash),
        source=source,
    )
    removed = await queries.fetch(
        conn,
        "remove_matches_from",
        chain_id=chain_id,
        fork_block=fork.fork_block,
        reorg_id=reorg_id,
    )
    refunded = await _refund(conn, removed, reorg_id, window_id)
    deliveries = await _announce(conn, chain_id, removed, limits)
    await queries.execute(conn, "forget_blocks_from", chain_id=chain_id, fork_block=fork.fork_block)
    per_request = Counter(
        row["backfill_request_id"] for row in removed if row["backfill_request_id"] is not None
    )
    rows = await queries.fetch(
        conn,
        "rewind_requests",
        chain_id=chain_id,
        fork_block=fork.fork_block,
        request_ids=list(per_request),
        removed=list(per_request.values()),
    )
    rewound = sum(1 for row in rows if row["rewound"])
    await queries.execute(
        conn,
        "count_reorg",
        reorg_id=reorg_id,
        matches_removed=len(removed),
        requests_rewound=rewound,
    )
    repair = Repair(reorg_id, fork, len(removed), refunded, rewound, deliveries)
    log.warning(
        "reorg_repaired",
        chain_id=chain_id,
        reorg_id=reorg_id,
        source=source,
        fork_block=fork.fork_block,
        newest_block=fork.newest_block,
        depth=fork.depth,
        changed_block=fork.changed_block,
        stored_hash=fork.stored_hash,
        canonical_hash=fork.canonical_hash,
        matches_removed=len(removed),
        credits_refunded=refunded,
        requests_rewound=rewound,
        deliveries=deliveries,
    )
    return repair


async def _refund(
    conn: Connection, removed: Sequence[asyncpg.Record], reorg_id: int, window_id: int | None
) -> int:
    """One credit back per removed match (each was paid when stored), a ledger line per
    workspace naming the request of its first removed match."""
    counts = Counter(row["workspace_id"] for row in removed)
    first_request: dict[uuid.UUID, uuid.UUID | None] = {}
    for row in removed:
        first_request.setdefault(row["workspace_id"], row["backfill_request_id"])
    await lock_balances(conn, counts)
    for workspace_id in sorted(counts):
        balance = await queries.fetchval(
            conn, "refund_credits", workspace_id=workspace_id, credits=counts[workspace_id]
        )
        await queries.execute(
            conn,
            "append_ledger_entry",
            workspace_id=workspace_id,
            delta=counts[workspace_id],
            balance_after=balance,
            reason="reorg_refund",
            backfill_request_id=first_request[workspace_id],
            window_id=window_id,
            note=f"reorg {reorg_id}: {counts[workspace_id]} matches of orphaned blocks removed",
        )
    return sum(counts.values())


async def _announce(
    conn: Connection, chain_id: int, removed: Sequence[asyncpg.Record], limits: OutboxLimits
) -> int:
    """The `backfill.matches.removed` deliveries: per subscription that receives
    webhooks and per request its matches were found under, in chain order."""
    subscription_ids = list({row["subscription_id"] for row in removed})
    if not subscription_ids:
        return 0
    targets = {
        row["id"]: row
        for row in await queries.fetch(
            conn, "load_window_subscriptions", subscription_ids=subscription_ids
        )
        if row["sends_webhooks"]
    }

    def key(row: asyncpg.Record) -> tuple[uuid.UUID, str]:
        return row["subscription_id"], str(row["backfill_request_id"])

    batches = []
    for (subscription_id, _), group in groupby(sorted(removed, key=key), key=key):
        target = targets.get(subscription_id)
        if target is None:
            continue
        rows = sorted(group, key=lambda row: (row["block_number"], row["log_index"]))
        batches.append(
            Batch(
                subscription_id,
                target["workspace_id"],
                rows[0]["backfill_request_id"],
                EventDecoder(target["event_abis"]),
                [Log.from_stored(row) for row in rows],
            )
        )
    return await enqueue(conn, chain_id, batches, limits, MATCHES_REMOVED)


def _bytes(hex_text: str | None) -> bytes | None:
    return None if hex_text is None else bytes.fromhex(hex_text.removeprefix("0x"))


async def chain_status(conn: Connection, chain_id: int) -> dict[str, Any]:
    """What an operator sees of a chain: heads, the last check, the halt, the last reorg."""
    row = await queries.fetchrow(conn, "chain_status", chain_id=chain_id)
    if row is None:
        raise NotFound(f"chain {chain_id}: no window has run on it")
    return dict(row)


async def resume_chain(
    conn: Connection, chain_id: int, limits: OutboxLimits, *, rescan_from: int | None = None
) -> dict[str, Any]:
    """Let a stopped chain's windows run again; with `rescan_from`, first repair as if
    the blocks from there on were replaced (the operator checked where the fork is)."""
    if rescan_from is not None and rescan_from < 0:
        raise InvalidInput(f"--rescan-from must be a block number >= 0, got {rescan_from}")
    async with conn.transaction():
        status = await chain_status(conn, chain_id)
        if rescan_from is not None and status["halted_reason"] is None:
            raise InvalidInput(
                f"chain {chain_id} is not stopped; --rescan-from repairs a stopped chain only"
            )
        previous = await queries.fetchval(conn, "resume_chain", chain_id=chain_id)
        repair = None
        if rescan_from is not None:
            newest = max(rescan_from, status["safe_head"] or rescan_from)
            fork = Fork(rescan_from, newest, rescan_from)
            repair = await repair_reorg(conn, chain_id, fork, limits, source="operator")
    log.warning("chain_resumed", chain_id=chain_id, was=previous, rescan_from=rescan_from)
    return {
        "chain_id": chain_id,
        "resumed": previous is not None,
        "was_halted_for": previous,
        "rescan_from": rescan_from,
        "matches_removed": repair.matches_removed if repair else 0,
        "requests_rewound": repair.requests_rewound if repair else 0,
    }
