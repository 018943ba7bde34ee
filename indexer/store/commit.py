"""One answered chunk, one transaction: what the store does with it.

`commit_chunk`, in the caller's transaction: drops requests an owner paused or
cancelled meanwhile, stores logs and matches and charges credits
(`store.matches`), writes the outbox, advances each request's cursor by
compare-and-set, grows coverage and pauses workspaces out of credits. It returns
a `CommitResult` that the window folds into its own view and stats.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

import structlog

from indexer import intervals
from indexer.chain.filters import Matcher
from indexer.chain.fragments import fragments_of
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.domain import RUNNABLE, BackfillStatus
from indexer.errors import LogfillError
from indexer.intervals import Blocks
from indexer.store.chunk import ChunkPlan, CommitContext, Tally, plan_chunk
from indexer.store.matches import store_matches

log = structlog.get_logger(__name__)


class LeaseLost(LogfillError):
    """Another worker leads this chain now; this window stops without committing."""


@dataclass(frozen=True)
class CommitResult:
    """What a commit changed, for the window to fold into its view and its stats."""

    done: dict[uuid.UUID, Blocks]  # request -> the blocks it finished in this commit
    completed: frozenset[uuid.UUID]
    paused_workspaces: frozenset[uuid.UUID]
    dropped: frozenset[uuid.UUID]  # paused, cancelled or moved by someone else meanwhile
    new_matches: int = 0
    duplicate_matches: int = 0

    @property
    def served(self) -> frozenset[uuid.UUID]:
        return frozenset(self.done)


async def create_staging_tables(conn: Connection) -> None:
    """The connection's temporary staging tables (emptied at each commit), once per window."""
    await queries.execute(conn, "create_window_logs_table")
    await queries.execute(conn, "create_window_matches_table")


async def commit_chunk(
    ctx: CommitContext, plan: ChunkPlan, matcher: Matcher[uuid.UUID]
) -> CommitResult:
    """Store, charge, enqueue and advance for one chunk, in the caller's transaction."""
    parts = {r: part for r, part in plan.parts.items() if r in ctx.requests}
    live, dropped = await lock_live(ctx, parts)
    if live.keys() != plan.parts.keys():  # an owner paused or cancelled one meanwhile
        plan = plan_chunk(ctx, plan.chunk, plan.order, live, matcher)
    tally = Tally.start(plan)
    if plan.candidates:
        await store_matches(ctx, tally)
    completed = await advance(ctx, tally)
    return CommitResult(
        done=tally.done,
        completed=frozenset(completed),
        paused_workspaces=frozenset(tally.paused_workspaces),
        dropped=frozenset(dropped),
        new_matches=tally.new_matches,
        duplicate_matches=sum(tally.duplicates.values()),
    )


async def lock_live(
    ctx: CommitContext, parts: dict[uuid.UUID, Blocks]
) -> tuple[dict[uuid.UUID, Blocks], set[uuid.UUID]]:
    """Lock the served requests; drop those whose status or cursor changed since the
    window read them, and block those that may no longer charge (the check holds at
    every commit, not only at queue time). Returns the live parts and the dropped ids."""
    rows = await queries.fetch(ctx.conn, "lock_served_requests", request_ids=list(parts))
    live, dropped, blocked = {}, set(), {}
    for row in rows:
        request_id = row["id"]
        if row["status"] not in RUNNABLE or row["cursor"] != ctx.requests[request_id].cursor:
            log.info("window_request_dropped", request_id=str(request_id), status=row["status"])
            dropped.add(request_id)
        elif row["blocked_reason"] is not None:
            log.info("backfill_blocked", request_id=str(request_id), reason=row["blocked_reason"])
            blocked[request_id] = row["blocked_reason"]
            dropped.add(request_id)
        else:
            live[request_id] = parts[request_id]
    if blocked:
        await queries.execute(
            ctx.conn,
            "block_requests",
            request_ids=list(blocked),
            reasons=list(blocked.values()),
        )
    return live, dropped


async def advance(ctx: CommitContext, tally: Tally) -> set[uuid.UUID]:
    """Advance every live request (compare-and-set), then coverage and pauses; the
    requests this commit completed."""
    cu_each = ctx.take_cu() // max(1, len(tally.plan.parts))
    covered: dict[uuid.UUID, Blocks] = defaultdict(list)
    completed = set()
    for request_id, done in tally.done.items():
        request = ctx.requests[request_id]
        remaining = intervals.subtract_all(request.remaining, done)
        status: BackfillStatus
        if request.workspace_id in tally.paused_workspaces and remaining:
            status = "paused_credits"
        elif request.follows and (request.following or not remaining):
            status = "following"  # caught up once: it stays so while it keeps up
        elif not remaining:
            status = "completed"
            completed.add(request_id)
        else:
            status = "processing"
        advanced = await queries.fetchval(
            ctx.conn,
            "advance_request",
            request_id=request_id,
            old_cursor=request.cursor,
            remaining=intervals.to_ranges(remaining),
            cursor=request.cursor_after(remaining),
            status=status,
            blocks_scanned=intervals.size(done),
            matches=tally.found.get(request_id, 0),
            new_matches=tally.new.get(request_id, 0),
            duplicate_matches=tally.duplicates.get(request_id, 0),
            credits_charged=tally.new.get(request_id, 0),
            cu_spent=cu_each,
            window_id=ctx.window_id,
        )
        if advanced is None:  # the cursor moved under us: another leader
            raise LeaseLost(f"request {request_id}: cursor changed during the window")
        covered[request.subscription_id].extend(done)
    for subscription_id, blocks in covered.items():
        if blocks:
            fragments = fragments_of(ctx.targets[subscription_id].filter) or []
            await queries.execute(
                ctx.conn,
                "add_coverage",
                subscription_id=subscription_id,
                blocks=intervals.to_ranges(intervals.normalise(blocks)),
                chain_id=ctx.chain_id,
                fragment_addresses=[f.address for f in fragments],
                fragment_topics=[f.topics_key for f in fragments],
            )
    if tally.paused_workspaces:
        await queries.execute(
            ctx.conn,
            "pause_workspace_requests",
            workspace_ids=list(tally.paused_workspaces),
            chain_id=ctx.chain_id,
        )
    return completed
