"""One backfill window for one chain: docs/architecture.md's "One window", step by step.

take the lease -> read heads (a window following another within its tick uses
the heads that one read) -> refresh the runnable requests -> plan slices
(fair share, batching) -> before the first eth_getLogs call, check the recent
blocks for a reorg and repair one (`window.reorg`, `store.reorg`) -> scan each
slice with merged filters -> commit each
answered chunk in ONE transaction (logs, matches, credits, outbox, cursors,
coverage) -> record the window. No RPC call happens while a transaction is open.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import structlog

from indexer import intervals
from indexer.chain.budget import BudgetExhausted, Journal, WindowBudget
from indexer.chain.client import BlockRef, Heads, RpcClient
from indexer.chain.errors import FatalRpcError, RpcError
from indexer.chain.filters import Matcher, merge_filters, subscription_filter
from indexer.chain.scanner import LogChunk, LogScanner
from indexer.db import queries
from indexer.db.pool import UNAVAILABLE_ERRORS, Connection
from indexer.domain import BACKFILL_STATUSES, RUNNABLE
from indexer.outbox.bodies import EventDecoder
from indexer.outbox.enqueue import OutboxLimits
from indexer.settings import ChainSettings, Settings
from indexer.store.chunk import ChunkPlan, CommitContext, Target, plan_chunk
from indexer.store.commit import CommitResult, LeaseLost, commit_chunk, create_staging_tables
from indexer.store.reorg import repair_reorg
from indexer.window import metrics
from indexer.window.cache import LogCache, read_cached_chunk
from indexer.window.chain_state import (
    Lease,
    end_lease,
    follow_lease,
    load_adaptive_range,
    renew_lease,
    save_heads,
    save_learned_range,
    take_lease,
)
from indexer.window.eta import QueuedWork, calls_for, estimate_queue
from indexer.window.plan import FairShare, RequestState, Slice, plan_slice
from indexer.window.reorg import DeepReorg, find_fork

log = structlog.get_logger(__name__)

Checked = Literal["scan", "replan", "stop"]  # what the reorg check lets the window do


@dataclass
class WindowStats:
    errors: int = 0
    served: set[uuid.UUID] = field(default_factory=set)
    new_matches: int = 0
    duplicate_matches: int = 0
    credits_charged: int = 0
    logs_fetched: int = 0
    logs_cached: int = 0  # read from the chain's log cache instead of the provider
    following: int = 0  # follow requests the window served
    lag_blocks: int | None = None  # the most behind of them, after the window
    reorg_depth: int | None = None  # blocks a reorg repaired in this window replaced
    matches_removed: int = 0  # by that repair
    error: str | None = None
    head: int | None = None
    safe_head: int | None = None

    def figures(self, *, cu_spent: int, calls: int) -> dict[str, Any]:
        """The window's figures by the names the audit row and `window_finished` share."""
        return {
            "cu_spent": cu_spent,
            "calls": calls,
            "errors": self.errors,
            "requests_served": len(self.served),
            "new_matches": self.new_matches,
            "duplicate_matches": self.duplicate_matches,
            "credits_charged": self.credits_charged,
            "logs_fetched": self.logs_fetched,
            "head": self.head,
            "safe_head": self.safe_head,
            "error": self.error,
        }


@dataclass
class WindowReport:
    window_id: int
    chain_id: int
    cu_spent: int
    budget_cu: int
    calls: int
    stats: WindowStats
    duration_s: float


async def run_window(
    pool: asyncpg.Pool, settings: Settings, chain_id: int, worker: str, *, follow: bool = False
) -> WindowReport | None:
    """Run this chain's window if this worker gets the lease; None if another has it.

    With `follow` (a request became runnable), a window may also follow the chain's
    last one within the same tick, on what the tick's budget has left.
    """
    chain = settings.chains[chain_id]
    async with pool.acquire() as conn:
        lease = await take_lease(conn, chain_id, worker, chain)
        if lease is None and follow:
            lease = await follow_lease(conn, chain_id, worker, chain)
        if lease is None:
            return None
        halted = await queries.fetchval(conn, "chain_halted", chain_id=chain_id)
        metrics.CHAIN_HALTED.labels(str(chain_id)).set(halted is not None)
        if halted is not None:  # stopped by a deep reorg until an operator resumes it
            await end_lease(conn, chain_id, worker, chain, 0)
            return None
        abandoned = await queries.fetchval(conn, "close_abandoned_windows", chain_id=chain_id)
        if abandoned:  # a leader died mid-window and its lease ran out: taken over
            metrics.LEASES_TAKEN_OVER.labels(str(chain_id)).inc()
            log.warning("window_lease_taken_over", chain_id=chain_id, abandoned=abandoned)
        window_id: int = await queries.fetchval(
            conn, "open_window", chain_id=chain_id, worker=worker, budget_cu=lease.budget_cu
        )
        window = Window(conn, settings, chain_id, chain, worker, window_id, lease)
        window.budget.journal = spend_journal(pool, window_id, chain_id, worker)
        began = time.monotonic()
        holding = asyncio.create_task(hold_lease(pool, chain_id, worker, chain))
        try:
            async with RpcClient.open(chain) as client:
                await window.run(client)
        except LeaseLost as exc:
            window.stats.error = str(exc)
        except Exception as exc:  # recorded here, logged by the caller (worker.window_job)
            window.stats.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
            duration = time.monotonic() - began
            await window.record(finished=True, duration_s=duration)
            await end_lease(conn, chain_id, worker, chain, window.budget.spent_cu)
            report = window.report(duration)
            _observe(report)
    return report


def spend_journal(pool: asyncpg.Pool, window_id: int, chain_id: int, worker: str) -> Journal:
    """Writes what the window is about to send (`window_spend`) on a connection of its
    own (the window's connection may be in a commit, and a call never waits for one),
    and refuses the call once another worker holds the chain's lease."""

    async def journal(cu: int, calls: int) -> None:
        written = await queries.fetchval(
            pool,
            "spend_window_cu",
            window_id=window_id,
            cu=cu,
            calls=calls,
            chain_id=chain_id,
            worker=worker,
        )
        if written is None:
            raise LeaseLost(f"chain {chain_id}: another worker took the window lease")

    return journal


async def hold_lease(pool: asyncpg.Pool, chain_id: int, worker: str, chain: ChainSettings) -> None:
    """Renew the window's lease while it runs, a third of `lease_seconds` apart, so that a
    window slow between commits (a long commit, a slow provider) is not taken over while
    it still works. Losing the lease ends nothing here: the window's next call or commit
    finds it out and stops."""
    while True:
        await asyncio.sleep(chain.lease_seconds / 3)
        try:
            async with pool.acquire() as conn:
                await renew_lease(conn, chain_id, worker, chain)
        except LeaseLost:
            return
        except UNAVAILABLE_ERRORS:
            continue  # the database is away: the window's own calls find out


def _observe(report: WindowReport) -> None:
    chain = str(report.chain_id)
    stats = report.stats
    metrics.CU_SPENT.labels(chain).inc(report.cu_spent)
    metrics.RPC_CALLS.labels(chain).inc(report.calls)
    metrics.WINDOWS.labels(chain, "error" if stats.error else "ok").inc()
    metrics.MATCHES.labels(chain, "new").inc(stats.new_matches)
    metrics.MATCHES.labels(chain, "duplicate").inc(stats.duplicate_matches)
    metrics.CREDITS_CHARGED.labels(chain).inc(stats.credits_charged)
    metrics.LOGS_READ.labels(chain, "provider").inc(stats.logs_fetched)
    metrics.LOGS_READ.labels(chain, "cache").inc(stats.logs_cached)
    metrics.BUDGET_UTILISATION.labels(chain).set(report.cu_spent / max(1, report.budget_cu))
    metrics.FOLLOWING.labels(chain).set(stats.following)
    metrics.FOLLOW_LAG.labels(chain).set(stats.lag_blocks or 0)
    if stats.reorg_depth is not None:
        metrics.REORGS.labels(chain).inc()
        metrics.REORG_DEPTH.labels(chain).observe(stats.reorg_depth)
    metrics.MATCHES_REMOVED.labels(chain).inc(stats.matches_removed)
    metrics.WINDOW_DURATION.labels(chain).observe(report.duration_s)
    log.info(
        "window_finished",
        chain_id=report.chain_id,
        window_id=report.window_id,
        budget_cu=report.budget_cu,
        **stats.figures(cu_spent=report.cu_spent, calls=report.calls),
        logs_cached=stats.logs_cached,
        following=stats.following,
        lag_blocks=stats.lag_blocks,
        reorg_depth=stats.reorg_depth,
        matches_removed=stats.matches_removed,
        duration_ms=round(report.duration_s * 1000),
    )


class Window:
    def __init__(
        self,
        conn: Connection,
        settings: Settings,
        chain_id: int,
        chain: ChainSettings,
        worker: str,
        window_id: int,
        lease: Lease | None = None,
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.chain_id = chain_id
        self.chain = chain
        self.worker = worker
        self.window_id = window_id
        lease = lease or Lease(chain.window_budget_cu)
        self.budget = WindowBudget(lease.budget_cu)
        self.known_heads = lease.heads
        self.stats = WindowStats()
        self.requests: dict[uuid.UUID, RequestState] = {}
        self.redeliver: set[uuid.UUID] = set()
        self.targets: dict[uuid.UUID, Target] = {}
        self.cache = LogCache(chain_id, {})
        self.reorgs_checked = False
        self._cu_mark = 0
        self.span = chain.max_block_range
        self.began = time.monotonic()
        self.context = CommitContext(
            conn=conn,
            chain_id=chain_id,
            window_id=window_id,
            requests=self.requests,
            targets=self.targets,
            redeliver=self.redeliver,
            outbox=OutboxLimits.from_settings(settings),
            take_cu=self.take_cu,
        )

    # -- the window -------------------------------------------------------------------

    async def run(self, client: RpcClient) -> None:
        heads = self.known_heads or await self.read_heads(client)
        if heads is None:
            return
        self.stats.head, self.stats.safe_head = heads.head, heads.safe_head
        await self.load_requests()
        if heads.safe_head is not None and self.requests:
            ranges = await load_adaptive_range(self.conn, self.chain_id, self.chain)
            scanner = LogScanner(client, ranges, verify_above=self.verify_above(heads))
            await self.scan(scanner, heads.safe_head)
            await save_learned_range(self.conn, self.chain_id, ranges)
            self.span = ranges.span
        self.measure_lag(heads.safe_head)
        await queries.execute(
            self.conn, "count_request_window", request_ids=list(self.stats.served)
        )
        await self.update_estimates()
        await self.update_queue_depth()

    def verify_above(self, heads: Heads) -> int | None:
        """Calls ending above this block are verified: near the head (a node behind
        answers []), and in the reorg check zone (their last block is recorded)."""
        depth = self.chain.verified_depth(heads.head, heads.safe_head)
        return heads.head - depth if depth else None

    async def check_reorgs(self, client: RpcClient, safe_head: int) -> Checked:
        """Before the window's first eth_getLogs call or use of stored logs near the safe
        head, the recent blocks logfill recorded, read again (once a window); a reorg
        below the safe head is repaired and the requests read again ("replan").
        "stop": the check failed or the chain stopped."""
        if self.reorgs_checked or not self.chain.reorg_zone():
            return "scan"
        self.reorgs_checked = True
        try:
            fork = await find_fork(
                self.conn, client, self.chain_id, self.chain, self.budget, safe_head
            )
        except DeepReorg as exc:
            await self.halt(str(exc))
            return "stop"
        except (RpcError, BudgetExhausted) as exc:  # checked again by the next window
            self.stats.errors += 1
            log.warning("reorg_check_failed", chain_id=self.chain_id, error=str(exc))
            return "stop"
        if fork is None:
            return "scan"
        async with self.conn.transaction():
            await renew_lease(self.conn, self.chain_id, self.worker, self.chain)
            repair = await repair_reorg(
                self.conn, self.chain_id, fork, self.context.outbox, window_id=self.window_id
            )
        self.stats.reorg_depth = fork.depth
        self.stats.matches_removed = repair.matches_removed
        self.requests.clear()
        self.redeliver.clear()
        self.targets.clear()
        await self.load_requests()  # they have the replaced blocks to scan again
        return "replan"

    async def halt(self, reason: str) -> None:
        """A reorg deeper than the chain's limit: stop its windows, remove nothing."""
        await queries.execute(self.conn, "halt_chain", chain_id=self.chain_id, reason=reason)
        metrics.CHAIN_HALTED.labels(str(self.chain_id)).set(1)
        self.stats.error = reason
        self.requests.clear()
        log.error("chain_halted", chain_id=self.chain_id, reason=reason)

    def measure_lag(self, safe_head: int | None) -> None:
        """How far behind the safe head the follow requests still running are."""
        following = [r for r in self.requests.values() if r.follows]
        self.stats.following = len(following)
        if following and safe_head is not None:
            self.stats.lag_blocks = max(
                (max(0, safe_head - r.cursor + 1) for r in following if r.cursor is not None),
                default=0,
            )

    async def read_heads(self, client: RpcClient) -> Heads | None:
        """The chain's head and safe head, saved for the API and the tick's other
        windows; None (recorded as the chain's transient trouble) if unreachable."""
        try:
            heads = await client.read_heads(self.budget)
        except (RpcError, BudgetExhausted) as exc:
            self.stats.errors += 1
            self.stats.error = f"reading the head: {exc}"
            await queries.execute(
                self.conn,
                "record_chain_transient_error",
                chain_id=self.chain_id,
                error=self.stats.error,
            )
            return None
        await save_heads(self.conn, self.chain_id, heads)
        return heads

    async def load_requests(self) -> None:
        await create_staging_tables(self.conn)
        async with self.conn.transaction():
            rows = await queries.fetch(
                self.conn,
                "refresh_runnable_requests",
                chain_id=self.chain_id,
                safe_head=self.stats.safe_head,
            )
            unpaid = await queries.fetch(
                self.conn, "pause_requests_without_credits", chain_id=self.chain_id
            )
        paused = {row["id"] for row in unpaid}
        for row in rows:
            if row["status"] not in RUNNABLE or row["id"] in paused:
                continue  # finished (coverage holds it all), blocked, or no credits to pay with
            request = RequestState(
                id=row["id"],
                workspace_id=row["workspace_id"],
                subscription_id=row["subscription_id"],
                order=row["block_order"],
                remaining=intervals.from_ranges(row["remaining"]),
                queued_at=row["created_at"],
                follow_next=row["to_block"] + 1 if row["follow"] else None,
                following=row["status"] == "following",
            )
            if row["resumed_for_credits"]:
                request.recount_block = request.cursor
            self.requests[row["id"]] = request
            if row["redeliver"]:
                self.redeliver.add(row["id"])
        subscription_ids = list({r.subscription_id for r in self.requests.values()})
        for row in await queries.fetch(
            self.conn, "load_window_subscriptions", subscription_ids=subscription_ids
        ):
            self.targets[row["id"]] = Target(
                id=row["id"],
                workspace_id=row["workspace_id"],
                filter=subscription_filter(row["addresses"], row["topics"]),
                sends_webhooks=row["sends_webhooks"],
                decoder=EventDecoder(row["event_abis"]),
            )
        self.cache = LogCache(self.chain_id, {s: t.filter for s, t in self.targets.items()})
        await self.cache.load(self.conn)

    async def scan(self, scanner: LogScanner, safe_head: int) -> None:
        share = FairShare()
        while True:
            quantum = scanner.ranges.span * self.chain.max_calls_in_flight
            active = list(self.requests.values())
            planned = plan_slice(active, safe_head=safe_head, share=share, quantum_blocks=quantum)
            if planned is None:
                return
            subscription_of = {r.id: r.subscription_id for r in active}
            cached = self.cache.cached_front(planned, subscription_of)
            # The provider is asked only after the check; stored logs near the safe
            # head are served from the cache only after it too.
            if not cached.served or cached.high >= safe_head - self.chain.reorg_zone():
                checked = await self.check_reorgs(scanner.client, safe_head)
                if checked == "stop":
                    return
                if checked == "replan":
                    continue
            if cached.served:
                if not await self.serve_cached(cached):
                    return  # nothing moved (a commit lost its requests): next window
                continue
            planned = self.cache.before_cached(planned, subscription_of)
            if planned.low > planned.high:
                return  # defensive: a cached front is served above, so never empty
            spent_before = self.budget.spent_cu
            workspaces = {self.requests[r].workspace_id for r in planned.served}
            try:
                await self.scan_slice(scanner, planned)
            except BudgetExhausted:
                return
            except FatalRpcError as exc:
                self.stats.errors += 1
                await self.fail(planned.served, str(exc))
            except RpcError as exc:
                self.stats.errors += 1
                await self.defer(planned.served, str(exc))
            finally:
                share.charge(workspaces, self.budget.spent_cu - spent_before)

    async def scan_slice(self, scanner: LogScanner, planned: Slice) -> None:
        served_subscriptions = {self.requests[r].subscription_id for r in planned.served}
        filters = {s: self.targets[s].filter for s in served_subscriptions}
        calls = merge_filters(filters.values(), max_addresses=self.chain.max_addresses_per_call)
        matcher = Matcher(filters)
        chunks = scanner.scan(calls, planned.low, planned.high, self.budget, order=planned.order)
        # Chunk N+1 is matched and staged while PostgreSQL commits chunk N (commits
        # stay one at a time, in scan order, on the window's connection).
        committing: asyncio.Task[None] | None = None
        async with aclosing(chunks):
            try:
                async for answered in chunks:
                    self.stats.logs_fetched += len(answered.logs)
                    # Bounded by what a commit may find: each log can match every
                    # subscription the slice serves.
                    max_logs = max(1, self.chain.max_matches_per_commit // len(filters))
                    for chunk in answered.split(max_logs, planned.order):
                        plan = self.prepare(chunk, planned, matcher)
                        if committing is not None:
                            await committing
                            committing = None
                        if not any(r in self.requests for r in planned.served):
                            return  # everyone this slice served paused, finished or cancelled
                        if plan is not None:
                            committing = asyncio.create_task(self.commit(plan, matcher))
                            await asyncio.sleep(0)  # its first statement goes out first
            finally:
                if committing is not None:
                    await committing  # the chunk was answered: its commit still counts

    async def serve_cached(self, planned: Slice) -> bool:
        """The slice from the chain's log cache, at no CU, in whole-block commits;
        whether any of its requests moved on."""
        before = {r: self.requests[r].remaining for r in planned.served}
        served_subscriptions = {self.requests[r].subscription_id for r in planned.served}
        filters = {s: self.targets[s].filter for s in served_subscriptions}
        matcher = Matcher(filters)
        used = self.cache.used_for(served_subscriptions)
        await queries.execute(
            self.conn,
            "touch_log_fragments",
            chain_id=self.chain_id,
            addresses=[f.address for f in used],
            topics=[f.topics_key for f in used],
        )
        max_logs = max(1, self.chain.max_matches_per_commit // len(filters))
        low, high = planned.low, planned.high
        while low <= high and any(r in self.requests for r in planned.served):
            chunk = await read_cached_chunk(
                self.conn,
                self.chain_id,
                low,
                high,
                planned.order,
                list(filters.values()),
                max_logs,
            )
            self.stats.logs_cached += len(chunk.logs)
            plan = self.prepare(chunk, planned, matcher)
            if plan is not None:
                await self.commit(plan, matcher)
            if planned.order == "asc":
                low = chunk.to_block + 1
            else:
                high = chunk.from_block - 1
        return any(
            r not in self.requests or self.requests[r].remaining != blocks
            for r, blocks in before.items()
        )

    def prepare(
        self, chunk: LogChunk, planned: Slice, matcher: Matcher[uuid.UUID]
    ) -> ChunkPlan | None:
        """The chunk's commit, worked out before its transaction opens."""
        parts = {
            request_id: part
            for request_id, blocks in planned.served.items()
            if request_id in self.requests
            and (part := intervals.intersect(blocks, chunk.from_block, chunk.to_block))
        }
        if not parts:
            return None
        plan = plan_chunk(self.context, chunk, planned.order, parts, matcher)
        plan.staged()
        return plan

    # -- one commit ---------------------------------------------------------------------

    async def commit(self, plan: ChunkPlan, matcher: Matcher[uuid.UUID]) -> None:
        """Store, charge, enqueue and advance for one answered chunk, in one transaction."""
        if not any(r in self.requests for r in plan.parts):
            return  # the previous commit paused or finished every request it served
        async with self.conn.transaction():
            await renew_lease(self.conn, self.chain_id, self.worker, self.chain)
            await self.record_header(plan.chunk.header)
            result = await commit_chunk(self.context, plan, matcher)
            self.fold(result)
            await self.record(finished=False)
        self.after_commit(result)

    async def record_header(self, header: BlockRef | None) -> None:
        """The last block of a verified call in the check zone, with its logs."""
        zone, safe_head = self.chain.reorg_zone(), self.stats.safe_head
        if header is None or not zone or safe_head is None or header.number < safe_head - zone:
            return
        await queries.execute(
            self.conn,
            "record_chain_block",
            chain_id=self.chain_id,
            block_number=header.number,
            block_hash=bytes.fromhex(header.hash[2:]),
            parent_hash=bytes.fromhex(header.parent_hash[2:]),
        )

    def fold(self, result: CommitResult) -> None:
        """The commit's figures join the window's."""
        self.stats.new_matches += result.new_matches
        self.stats.credits_charged += result.new_matches
        self.stats.duplicate_matches += result.duplicate_matches
        self.stats.served |= result.served

    def after_commit(self, result: CommitResult) -> None:
        """The transaction is committed: the window's view follows it."""
        for request_id in result.dropped:
            self.requests.pop(request_id, None)
        for request_id, done in result.done.items():
            request = self.requests[request_id]
            self.cache.add(request.subscription_id, done)
            request.remaining = intervals.subtract_all(request.remaining, done)
            request.cursor = request.cursor_after(request.remaining)
            request.following = request.following or (request.follows and not request.remaining)
        for request_id in list(self.requests):
            request = self.requests[request_id]
            if request_id in result.completed or request.workspace_id in result.paused_workspaces:
                del self.requests[request_id]

    # -- failures ---------------------------------------------------------------------

    async def fail(self, served: Iterable[uuid.UUID], error: str) -> None:
        ids = [r for r in served if r in self.requests]
        await queries.execute(self.conn, "fail_requests", request_ids=ids, error=error)
        for request_id in ids:
            self.requests.pop(request_id)
        log.warning("backfill_failed", chain_id=self.chain_id, requests=len(ids), error=error)

    async def defer(self, served: Iterable[uuid.UUID], error: str) -> None:
        """Transient trouble: these requests wait for the next window."""
        ids = [r for r in served if r in self.requests]
        await queries.execute(self.conn, "record_transient_error", request_ids=ids, error=error)
        for request_id in ids:
            self.requests.pop(request_id)
        log.warning("backfill_deferred", chain_id=self.chain_id, requests=len(ids), error=error)

    # -- bookkeeping ------------------------------------------------------------------

    def take_cu(self) -> int:
        """CU spent since the previous commit (attributed to that commit's requests)."""
        spent, self._cu_mark = self.budget.spent_cu - self._cu_mark, self.budget.spent_cu
        return spent

    async def record(self, *, finished: bool, duration_s: float | None = None) -> None:
        await queries.execute(
            self.conn,
            "record_window",
            window_id=self.window_id,
            **self.stats.figures(cu_spent=self.budget.spent_cu, calls=self.budget.attempts),
            finished_at=datetime.now(UTC) if finished else None,
            duration_ms=round(duration_s * 1000) if duration_s is not None else None,
        )

    def report(self, duration_s: float) -> WindowReport:
        return WindowReport(
            self.window_id,
            self.chain_id,
            self.budget.spent_cu,
            self.budget.limit_cu,
            self.budget.attempts,
            self.stats,
            duration_s,
        )

    def seconds_per_window(self) -> float:
        """How far apart windows are: a tick, or the ticks this window took when it
        spent its whole budget (the scheduler skips the ticks a window overruns)."""
        tick = self.chain.tick_seconds
        if self.budget.can_afford(self.chain.cu_cost("eth_getLogs")):
            return tick  # not a full window: says nothing about how long one takes
        return tick * max(1, math.ceil((time.monotonic() - self.began) / tick))

    async def update_estimates(self) -> None:
        """ETA of the chain's queue, FIFO, from the CU its remaining blocks need; and the
        calls the whole queue needs, which accepting a request starts from."""
        counted_at = await queries.fetchval(self.conn, "database_now")
        rows = await queries.fetch(self.conn, "runnable_queue", chain_id=self.chain_id)
        queue = [QueuedWork(row["id"], row["blocks"]) for row in rows]
        estimates = estimate_queue(
            queue,
            now=datetime.now(UTC),
            span=self.span,
            call_cu=self.chain.cu_cost("eth_getLogs"),
            window_cu=self.chain.window_budget_cu,
            head_cu=self.chain.head_read_cu(),
            tick_seconds=self.seconds_per_window(),
        )
        await queries.execute(
            self.conn,
            "update_estimates",
            request_ids=list(estimates),
            start_ats=[e.start_at for e in estimates.values()],
            finish_ats=[e.finish_at for e in estimates.values()],
        )
        await queries.execute(
            self.conn,
            "count_queue",
            chain_id=self.chain_id,
            queue_calls=sum(calls_for(work.blocks, self.span) for work in queue),
            counted_at=counted_at,
        )

    async def update_queue_depth(self) -> None:
        """Requests per status on the chain; a status with none left reads 0, not the
        count it had (an alert on paused_credits clears after a top-up)."""
        chain = str(self.chain_id)
        rows = await queries.fetch(self.conn, "queue_depth", chain_id=self.chain_id)
        counts = {row["status"]: row["n"] for row in rows}
        for status in BACKFILL_STATUSES:
            metrics.QUEUE_DEPTH.labels(chain, status).set(counts.get(status, 0))
