"""One backfill window for one chain: DESIGN.md's "One window", step by step.

take the lease -> read heads -> refresh the runnable requests -> plan slices
(fair share, batching) -> scan each slice with merged filters -> commit each
answered chunk in ONE transaction (logs, matches, credits, outbox, cursors,
coverage) -> record the window. No RPC call happens while a transaction is open.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from indexer import intervals, metrics, staging
from indexer.budget import BudgetExhausted, WindowBudget
from indexer.chain_state import load_adaptive_range, save_learned_range
from indexer.db import Connection
from indexer.errors import LogfillError
from indexer.events import EventDecoder, event_body
from indexer.filters import Log, LogFilter, Matcher, merge_filters
from indexer.intervals import Blocks
from indexer.planning import (
    FairShare,
    QueuedWork,
    RequestState,
    Slice,
    estimate_queue,
    paid_cutoff,
    plan_slice,
)
from indexer.queries import QUERIES
from indexer.rpc import LogChunk, LogScanner, RpcClient
from indexer.rpc_errors import FatalRpcError, ProviderFault, RpcError
from indexer.settings import ChainSettings, Settings
from indexer.webhooks.payload import split_events

log = structlog.get_logger(__name__)

RUNNABLE = ("queued", "processing", "paused_credits")
_LOG_COLUMNS = (
    "chain_id", "block_number", "block_hash", "log_index", "transaction_hash",
    "transaction_index", "address", "topics", "data",
)  # fmt: skip


class LeaseLost(LogfillError):
    """Another worker leads this chain now; this window stops without committing."""


@dataclass
class Subscription:
    id: uuid.UUID
    workspace_id: uuid.UUID
    filter: LogFilter
    sends_webhooks: bool
    decoder: EventDecoder


@dataclass
class WindowStats:
    errors: int = 0
    served: set[uuid.UUID] = field(default_factory=set)
    new_matches: int = 0
    duplicate_matches: int = 0
    credits_charged: int = 0
    logs_fetched: int = 0
    error: str | None = None
    head: int | None = None
    safe_head: int | None = None


@dataclass
class WindowReport:
    window_id: int
    chain_id: int
    cu_spent: int
    budget_cu: int
    calls: int
    stats: WindowStats
    duration_s: float


def subscription_filter(addresses: Sequence[bytes], topics: Sequence[Any]) -> LogFilter:
    """A stored subscription's filter: topics positions are null, a hex string or a list."""
    positions = [
        None if options is None else ([options] if isinstance(options, str) else options)
        for options in topics
    ]
    return LogFilter.build(addresses, positions)


async def run_window(
    pool: asyncpg.Pool, settings: Settings, chain_id: int, worker: str
) -> WindowReport | None:
    """Run this chain's window if this worker gets the lease; None if another has it."""
    chain = settings.chains[chain_id]
    async with pool.acquire() as conn:
        started = await conn.fetchval(
            QUERIES["take_window_lease"], chain_id, worker, chain.lease_seconds, chain.tick_seconds
        )
        if started is None:
            return None
        await conn.execute(QUERIES["close_abandoned_windows"], chain_id)
        window_id: int = await conn.fetchval(
            QUERIES["open_window"], chain_id, worker, chain.window_budget_cu
        )
        window = Window(conn, settings, chain_id, chain, worker, window_id)
        began = time.monotonic()
        try:
            async with RpcClient.open(chain) as client:
                await window.run(client)
        except LeaseLost as exc:
            window.stats.error = str(exc)
        except Exception as exc:  # recorded here, logged by the caller (worker.window_job)
            window.stats.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            duration = time.monotonic() - began
            await window.record(finished=True, duration_s=duration)
            await conn.execute(QUERIES["end_window_lease"], chain_id, worker, chain.tick_seconds)
            report = window.report(duration)
            _observe(report)
    return report


def _observe(report: WindowReport) -> None:
    chain = str(report.chain_id)
    stats = report.stats
    metrics.CU_SPENT.labels(chain).inc(report.cu_spent)
    metrics.RPC_CALLS.labels(chain).inc(report.calls)
    metrics.WINDOWS.labels(chain, "error" if stats.error else "ok").inc()
    metrics.MATCHES.labels(chain, "new").inc(stats.new_matches)
    metrics.MATCHES.labels(chain, "duplicate").inc(stats.duplicate_matches)
    metrics.CREDITS_CHARGED.labels(chain).inc(stats.credits_charged)
    metrics.BUDGET_UTILISATION.labels(chain).set(report.cu_spent / max(1, report.budget_cu))
    metrics.WINDOW_DURATION.labels(chain).observe(report.duration_s)
    log.info(
        "window_finished",
        chain_id=report.chain_id,
        window_id=report.window_id,
        budget_cu=report.budget_cu,
        cu_spent=report.cu_spent,
        calls=report.calls,
        errors=stats.errors,
        requests_served=len(stats.served),
        new_matches=stats.new_matches,
        duplicate_matches=stats.duplicate_matches,
        credits_charged=stats.credits_charged,
        logs_fetched=stats.logs_fetched,
        head=stats.head,
        safe_head=stats.safe_head,
        error=stats.error,
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
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.chain_id = chain_id
        self.chain = chain
        self.worker = worker
        self.window_id = window_id
        self.budget = WindowBudget(chain.window_budget_cu)
        self.stats = WindowStats()
        self.requests: dict[uuid.UUID, RequestState] = {}
        self.redeliver: set[uuid.UUID] = set()
        self.subscriptions: dict[uuid.UUID, Subscription] = {}
        self._cu_mark = 0
        self.span = chain.max_block_range

    # -- the window -------------------------------------------------------------------

    async def run(self, client: RpcClient) -> None:
        try:
            heads = await client.read_heads(self.budget)
        except (RpcError, BudgetExhausted) as exc:
            self.stats.errors += 1
            self.stats.error = f"reading the head: {exc}"
            return
        self.stats.head, self.stats.safe_head = heads.head, heads.safe_head
        await self.conn.execute(QUERIES["save_heads"], self.chain_id, heads.head, heads.safe_head)
        await self.load_requests()
        if heads.safe_head is not None and self.requests:
            ranges = await load_adaptive_range(self.conn, self.chain_id, self.chain)
            await self.scan(LogScanner(client, ranges), heads.safe_head)
            await save_learned_range(self.conn, self.chain_id, ranges)
            self.span = ranges.span
        await self.conn.execute(QUERIES["count_request_window"], list(self.stats.served))
        await self.update_estimates()
        await self.update_queue_depth()

    async def load_requests(self) -> None:
        await self.conn.execute(QUERIES["create_window_logs_table"])
        await self.conn.execute(QUERIES["create_window_matches_table"])
        async with self.conn.transaction():
            rows = await self.conn.fetch(QUERIES["refresh_runnable_requests"], self.chain_id)
            unpaid = await self.conn.fetch(QUERIES["pause_requests_without_credits"], self.chain_id)
        paused = {row["id"] for row in unpaid}
        for row in rows:
            if row["status"] not in RUNNABLE or row["id"] in paused:
                continue  # finished (coverage holds it all), or no credits to pay with
            self.requests[row["id"]] = RequestState(
                id=row["id"],
                workspace_id=row["workspace_id"],
                subscription_id=row["subscription_id"],
                order=row["block_order"],
                remaining=intervals.from_ranges(row["remaining"]),
                queued_at=row["created_at"],
            )
            if row["redeliver"]:
                self.redeliver.add(row["id"])
        subscription_ids = list({r.subscription_id for r in self.requests.values()})
        for row in await self.conn.fetch(QUERIES["load_window_subscriptions"], subscription_ids):
            self.subscriptions[row["id"]] = Subscription(
                id=row["id"],
                workspace_id=row["workspace_id"],
                filter=subscription_filter(row["addresses"], row["topics"]),
                sends_webhooks=row["sends_webhooks"],
                decoder=EventDecoder(row["event_abis"]),
            )

    async def scan(self, scanner: LogScanner, safe_head: int) -> None:
        share = FairShare()
        while True:
            quantum = scanner.ranges.span * self.chain.max_calls_in_flight
            active = list(self.requests.values())
            planned = plan_slice(active, safe_head=safe_head, share=share, quantum_blocks=quantum)
            if planned is None:
                return
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
        filters = {s: self.subscriptions[s].filter for s in served_subscriptions}
        calls = merge_filters(filters.values(), max_addresses=self.chain.max_addresses_per_call)
        matcher = Matcher(filters)
        chunks = scanner.scan(calls, planned.low, planned.high, self.budget, order=planned.order)
        # Chunk N+1 is matched and staged while PostgreSQL commits chunk N (commits
        # stay one at a time, in scan order, on the window's connection).
        committing: asyncio.Task[None] | None = None
        async with aclosing(chunks):
            try:
                async for chunk in chunks:
                    self.stats.logs_fetched += len(chunk.logs)
                    plan = self.prepare(chunk, planned, matcher)
                    if committing is not None:
                        await committing
                        committing = None
                    if not any(r in self.requests for r in planned.served):
                        return  # everyone this slice served paused, finished or was cancelled
                    if plan is not None:
                        committing = asyncio.create_task(self.commit(plan, matcher))
            finally:
                if committing is not None:
                    await committing  # the chunk was answered: its commit still counts

    def prepare(
        self, chunk: LogChunk, planned: Slice, matcher: Matcher[uuid.UUID]
    ) -> CommitPlan | None:
        """The chunk's commit, worked out before its transaction opens."""
        parts = {
            request_id: part
            for request_id, blocks in planned.served.items()
            if request_id in self.requests
            and (part := intervals.intersect(blocks, chunk.from_block, chunk.to_block))
        }
        if not parts:
            return None
        plan = CommitPlan.build(self, chunk, planned.order, parts, matcher)
        plan.stage(self)
        return plan

    # -- one commit ---------------------------------------------------------------------

    async def commit(self, plan: CommitPlan, matcher: Matcher[uuid.UUID]) -> None:
        """Store, charge, enqueue and advance for one answered chunk, in one transaction."""
        parts = {r: part for r, part in plan.parts.items() if r in self.requests}
        if not parts:
            return  # the previous commit paused or finished every request it served
        async with self.conn.transaction():
            renewed = await self.conn.fetchval(
                QUERIES["renew_window_lease"], self.chain_id, self.worker, self.chain.lease_seconds
            )
            if renewed is None:
                raise LeaseLost(f"chain {self.chain_id}: another worker took the window lease")
            parts = await self.lock_live(parts)
            if parts.keys() != plan.parts.keys():  # an owner paused or cancelled one meanwhile
                plan = CommitPlan.build(self, plan.chunk, plan.order, parts, matcher)
            if plan.candidates:
                await plan.store(self)
            await plan.apply(self)
            await self.record(finished=False)
        plan.after_commit(self)

    async def lock_live(self, parts: dict[uuid.UUID, Blocks]) -> dict[uuid.UUID, Blocks]:
        """Drop requests whose status or cursor changed since the window read them."""
        rows = await self.conn.fetch(QUERIES["lock_served_requests"], list(parts))
        live = {}
        for row in rows:
            request = self.requests[row["id"]]
            if row["status"] in RUNNABLE and row["cursor"] == request.cursor:
                live[row["id"]] = parts[row["id"]]
            else:
                log.info("window_request_dropped", request_id=str(row["id"]), status=row["status"])
                self.requests.pop(row["id"], None)
        return live

    # -- failures ---------------------------------------------------------------------

    async def fail(self, served: Iterable[uuid.UUID], error: str) -> None:
        ids = [r for r in served if r in self.requests]
        await self.conn.execute(QUERIES["fail_requests"], ids, error)
        for request_id in ids:
            self.requests.pop(request_id)
        log.warning("backfill_failed", chain_id=self.chain_id, requests=len(ids), error=error)

    async def defer(self, served: Iterable[uuid.UUID], error: str) -> None:
        """Transient trouble: these requests wait for the next window."""
        ids = [r for r in served if r in self.requests]
        await self.conn.execute(QUERIES["record_transient_error"], ids, error)
        for request_id in ids:
            self.requests.pop(request_id)
        log.warning("backfill_deferred", chain_id=self.chain_id, requests=len(ids), error=error)

    # -- bookkeeping ------------------------------------------------------------------

    def take_cu(self) -> int:
        """CU spent since the previous commit (attributed to that commit's requests)."""
        spent, self._cu_mark = self.budget.spent_cu - self._cu_mark, self.budget.spent_cu
        return spent

    async def record(self, *, finished: bool, duration_s: float | None = None) -> None:
        stats = self.stats
        await self.conn.execute(
            QUERIES["record_window"],
            self.window_id,
            self.budget.spent_cu,
            self.budget.attempts,
            stats.errors,
            len(stats.served),
            stats.new_matches,
            stats.duplicate_matches,
            stats.credits_charged,
            stats.logs_fetched,
            stats.head,
            stats.safe_head,
            stats.error,
            datetime.now(UTC) if finished else None,
            round(duration_s * 1000) if duration_s is not None else None,
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

    async def update_estimates(self) -> None:
        """ETA of the chain's queue, FIFO, from the CU its remaining blocks need."""
        rows = await self.conn.fetch(QUERIES["runnable_queue"], self.chain_id)
        queue = [QueuedWork(row["id"], row["blocks"]) for row in rows]
        estimates = estimate_queue(
            queue,
            now=datetime.now(UTC),
            span=self.span,
            call_cu=self.chain.cu_cost("eth_getLogs"),
            window_cu=self.chain.window_budget_cu,
            head_cu=self.chain.head_read_cu(),
            tick_seconds=self.chain.tick_seconds,
        )
        await self.conn.execute(
            QUERIES["update_estimates"],
            list(estimates),
            [e.start_at for e in estimates.values()],
            [e.finish_at for e in estimates.values()],
        )

    async def update_queue_depth(self) -> None:
        chain = str(self.chain_id)
        for row in await self.conn.fetch(QUERIES["queue_depth"], self.chain_id):
            metrics.QUEUE_DEPTH.labels(chain, row["status"]).set(row["n"])


Pair = tuple[uuid.UUID, int, Log]  # (subscription, log id, log)


@dataclass
class CommitPlan:
    """What one chunk's commit does, worked out during its transaction."""

    chunk: LogChunk
    order: str  # the slice's scan order: credits are paid in it
    parts: dict[uuid.UUID, Blocks]  # live request -> its blocks in this chunk
    candidates: list[tuple[uuid.UUID, Log]]  # (subscription, log) in scan order
    done: dict[uuid.UUID, Blocks] = field(default_factory=dict)  # parts, minus unpaid blocks
    paused_workspaces: set[uuid.UUID] = field(default_factory=set)
    completed: set[uuid.UUID] = field(default_factory=set)
    new_by_request: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    found_by_request: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    duplicates_by_request: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    clipped: set[uuid.UUID] = field(default_factory=set)  # requests cut short by credits
    requests_by_subscription: dict[uuid.UUID, list[uuid.UUID]] = field(
        default_factory=lambda: defaultdict(list)
    )
    payload: bytes | None = None  # the candidates as COPY text for `window_matches`

    @classmethod
    def build(
        cls,
        window: Window,
        chunk: LogChunk,
        order: str,
        parts: dict[uuid.UUID, Blocks],
        matcher: Matcher[uuid.UUID],
    ) -> CommitPlan:
        """The (subscription, log) matches inside the live requests' blocks."""
        blocks_of: dict[uuid.UUID, Blocks] = defaultdict(list)
        for request_id, part in parts.items():
            blocks_of[window.requests[request_id].subscription_id].extend(part)
        candidates = []
        for entry in chunk.logs:
            for subscription_id in matcher.match(entry):
                if intervals.contains(blocks_of.get(subscription_id, ()), entry.block_number):
                    candidates.append((subscription_id, entry))
        if order == "desc":
            candidates.sort(key=lambda c: (-c[1].block_number, c[1].log_index))
        done = {request_id: list(part) for request_id, part in parts.items()}
        plan = cls(chunk, order, parts, candidates, done)
        oldest_first = sorted(parts, key=lambda r: (window.requests[r].queued_at, str(r)))
        for request_id in oldest_first:
            subscription_id = window.requests[request_id].subscription_id
            plan.requests_by_subscription[subscription_id].append(request_id)
        return plan

    def requests_of(
        self,
        window: Window,
        subscription_id: uuid.UUID,
        block: int,
        blocks: dict[uuid.UUID, Blocks],
    ) -> list[uuid.UUID]:
        """Live requests of the subscription whose `blocks` hold this block, oldest first."""
        ids = self.requests_by_subscription.get(subscription_id, ())
        if len(ids) == 1 and (blocks is self.parts or ids[0] not in self.clipped):
            return [ids[0]]  # the common case: every candidate lies in its one request's part
        return [
            request_id
            for request_id in self.requests_by_subscription.get(subscription_id, ())
            if intervals.contains(blocks[request_id], block)
        ]

    def owner(self, window: Window, subscription_id: uuid.UUID, block: int) -> uuid.UUID | None:
        """The request a new match is stored and charged under."""
        found = self.requests_of(window, subscription_id, block, self.parts)
        return found[0] if found else None

    def stage(self, window: Window) -> bytes:
        """The candidates with their owning requests, as COPY text (made once)."""
        if self.payload is None:
            self.payload = staging.stage_payload(
                (s, self.owner(window, s, entry.block_number), entry)
                for s, entry in self.candidates
            )
        return self.payload

    async def store(self, window: Window) -> None:
        """Logs and paid matches, credits, ledger, outbox."""
        wanted = Counter(window.subscriptions[s].workspace_id for s, _ in self.candidates)
        balances = {
            row["id"]: row["credits"]
            for row in await window.conn.fetch(QUERIES["lock_workspaces"], list(wanted))
        }
        if all(balances[w] >= n for w, n in wanted.items()):
            await self.store_staged(window)  # every candidate can be paid: no cut-off to find
        else:
            await self.store_counted(window, balances)

    async def store_staged(self, window: Window) -> None:
        """Every candidate is affordable: logs and matches go in by COPY and two statements."""
        conn = window.conn
        try:
            await conn.copy_to_table(
                "window_matches",
                source=io.BytesIO(self.stage(window)),
                columns=staging.COLUMNS,
                format="text",
            )
        except asyncpg.DataError as exc:
            raise ProviderFault(
                f"eth_getLogs for blocks {self.chunk.from_block}-{self.chunk.to_block} "
                f"returned a log that is not hex: {exc}"
            ) from exc
        await conn.execute(QUERIES["insert_staged_logs"], window.chain_id)
        detailed = self.detailed(window)
        rows = await conn.fetch(QUERIES["insert_staged_matches"], window.chain_id, list(detailed))
        new_keys: set[tuple[uuid.UUID, int, int]] = set()
        new_of: Counter[uuid.UUID] = Counter()
        charged: dict[uuid.UUID, tuple[int, uuid.UUID | None]] = {}
        for row in rows:
            subscription_id, request_id = row["subscription_id"], row["backfill_request_id"]
            new_of[subscription_id] += row["new_matches"]
            workspace_id = window.subscriptions[subscription_id].workspace_id
            count, first = charged.get(workspace_id, (0, request_id))
            charged[workspace_id] = (count + row["new_matches"], first)
            if subscription_id in detailed:
                keys = zip(row["block_numbers"], row["log_indexes"], strict=True)
                new_keys.update((subscription_id, block, index) for block, index in keys)
            elif request_id is not None:
                self.new_by_request[request_id] += row["new_matches"]
        found_of = Counter(s for s, _ in self.candidates if s not in detailed)
        for subscription_id, found in found_of.items():
            (request_id,) = self.requests_by_subscription[subscription_id]
            self.found_by_request[request_id] += found
            self.duplicates_by_request[request_id] += found - new_of[subscription_id]
        paid: list[Pair] = []
        duplicates: list[Pair] = []
        for subscription_id, entry in self.candidates:
            if subscription_id in detailed:
                is_new = (subscription_id, entry.block_number, entry.log_index) in new_keys
                (paid if is_new else duplicates).append((subscription_id, 0, entry))
        self.count(window, paid, duplicates)
        self.tally(window, sum(new_of.values()))
        await self.debit(window, charged)
        await self.enqueue(window, paid, duplicates)

    def detailed(self, window: Window) -> set[uuid.UUID]:
        """Subscriptions whose new matches are needed one by one, not just counted:
        those with a webhook (outbox) or with several requests sharing the chunk."""
        return {
            subscription_id
            for subscription_id, request_ids in self.requests_by_subscription.items()
            if len(request_ids) > 1 or window.subscriptions[subscription_id].sends_webhooks
        }

    def tally(self, window: Window, new_matches: int) -> None:
        window.stats.new_matches += new_matches
        window.stats.credits_charged += new_matches
        window.stats.duplicate_matches += sum(self.duplicates_by_request.values())

    async def store_counted(self, window: Window, balances: dict[uuid.UUID, int]) -> None:
        """Some workspace cannot pay for every candidate: find which matches are new
        first, pay them in scan order up to the balance, then store the paid ones."""
        conn = window.conn
        rows: dict[tuple[str, int], tuple[Any, ...]] = {}
        for _, entry in self.candidates:
            key = (entry.block_hash, entry.log_index)
            if key not in rows:
                rows[key] = (window.chain_id, *entry.row_values())
        await conn.copy_records_to_table("window_logs", records=rows.values(), columns=_LOG_COLUMNS)
        log_ids = {
            (row["block_hash"], row["log_index"]): row["id"]
            for row in await conn.fetch(QUERIES["insert_window_logs"])
        }
        fresh = set(log_ids.values())  # logs new to the table: no match of them can exist
        if len(log_ids) < len(rows):
            stored = [r for r in rows.values() if (r[2], r[3]) not in log_ids]
            found = await conn.fetch(
                QUERIES["find_stored_logs"],
                window.chain_id,
                [r[2] for r in stored],
                [r[3] for r in stored],
            )
            log_ids.update({(row["block_hash"], row["log_index"]): row["id"] for row in found})
        pairs = []
        for subscription_id, entry in self.candidates:
            row = rows[(entry.block_hash, entry.log_index)]
            pairs.append((subscription_id, log_ids[(row[2], row[3])], entry))
        maybe_stored = [p for p in pairs if p[1] not in fresh]
        existing = set()
        if maybe_stored:
            found = await conn.fetch(
                QUERIES["existing_matches"],
                [p[0] for p in maybe_stored],
                [p[1] for p in maybe_stored],
            )
            existing = {(row["subscription_id"], row["log_id"]) for row in found}
        new = [p for p in pairs if (p[0], p[1]) not in existing]
        paid = await self.charge(window, new, balances)
        duplicates = [p for p in pairs if (p[0], p[1]) in existing]
        self.count(window, paid, duplicates)
        self.tally(window, len(paid))
        await self.enqueue(window, paid, duplicates)

    async def charge(
        self, window: Window, new: list[Pair], balances: dict[uuid.UUID, int]
    ) -> list[Pair]:
        """Pay new matches in scan order up to each workspace's balance; store the paid."""
        by_workspace: dict[uuid.UUID, list[Pair]] = defaultdict(list)
        for pair in new:
            by_workspace[window.subscriptions[pair[0]].workspace_id].append(pair)
        paid: list[Pair] = []
        for workspace_id, matches in by_workspace.items():
            keys = [(e.block_number, e.log_index) for _, _, e in matches]
            count, cut = paid_cutoff(keys, balances[workspace_id])
            paid.extend(matches[:count])
            if cut is not None:
                self.cut_workspace(window, workspace_id, cut)
        if not paid:
            return []
        inserted = await window.conn.fetch(
            QUERIES["insert_matches"],
            [s for s, _, _ in paid],
            [log_id for _, log_id, _ in paid],
            [e.block_number for _, _, e in paid],
            [e.log_index for _, _, e in paid],
            [self.owner(window, s, e.block_number) for s, _, e in paid],
        )
        stored = {(row["subscription_id"], row["log_id"]) for row in inserted}
        paid = [p for p in paid if (p[0], p[1]) in stored]
        charged: dict[uuid.UUID, tuple[int, uuid.UUID | None]] = {}
        for subscription_id, _, entry in paid:
            workspace_id = window.subscriptions[subscription_id].workspace_id
            count, first = charged.get(workspace_id, (0, None))
            if first is None:
                first = self.owner(window, subscription_id, entry.block_number)
            charged[workspace_id] = (count + 1, first)
        await self.debit(window, charged)
        return paid

    async def debit(
        self, window: Window, charged: dict[uuid.UUID, tuple[int, uuid.UUID | None]]
    ) -> None:
        """One credit per stored new match, with a ledger line per workspace (naming
        the request of its first match)."""
        for workspace_id, (count, request_id) in charged.items():
            if not count:
                continue
            balance = await window.conn.fetchval(QUERIES["charge_credits"], workspace_id, count)
            await window.conn.execute(
                QUERIES["append_ledger_entry"],
                workspace_id,
                -count,
                balance,
                "backfill_matches",
                request_id,
                window.window_id,
                f"chain {window.chain_id} blocks {self.chunk.from_block}-{self.chunk.to_block}",
            )

    def cut_workspace(self, window: Window, workspace_id: uuid.UUID, cut: int) -> None:
        """The workspace's requests stop at block `cut`: scanned again after a top-up."""
        self.paused_workspaces.add(workspace_id)
        for request_id, part in self.done.items():
            if window.requests[request_id].workspace_id != workspace_id or not part:
                continue
            self.clipped.add(request_id)
            if self.order == "desc":
                self.done[request_id] = intervals.intersect(part, cut + 1, part[-1][1])
            else:
                self.done[request_id] = intervals.intersect(part, part[0][0], cut - 1)

    def count(self, window: Window, paid: list[Pair], duplicates: list[Pair]) -> None:
        for subscription_id, _, entry in paid:
            owner = self.owner(window, subscription_id, entry.block_number)
            if owner is not None:
                self.new_by_request[owner] += 1
            for request_id in self.requests_of(
                window, subscription_id, entry.block_number, self.parts
            ):
                self.found_by_request[request_id] += 1
        for subscription_id, _, entry in duplicates:
            for request_id in self.requests_of(
                window, subscription_id, entry.block_number, self.done
            ):
                self.found_by_request[request_id] += 1
                self.duplicates_by_request[request_id] += 1

    async def enqueue(self, window: Window, paid: list[Pair], duplicates: list[Pair]) -> None:
        """Outbox rows for webhook-enabled subscriptions (and stored matches to redeliver)."""
        batches: dict[tuple[uuid.UUID, uuid.UUID | None], list[Log]] = defaultdict(list)
        for subscription_id, _, entry in paid:
            if window.subscriptions[subscription_id].sends_webhooks:
                owner = self.owner(window, subscription_id, entry.block_number)
                batches[(subscription_id, owner)].append(entry)
        for subscription_id, _, entry in duplicates:
            if not window.subscriptions[subscription_id].sends_webhooks:
                continue
            asked = self.requests_of(window, subscription_id, entry.block_number, self.done)
            redelivering = [r for r in asked if r in window.redeliver]
            if redelivering:
                batches[(subscription_id, redelivering[0])].append(entry)
        rows = list(self.delivery_rows(window, batches))
        if rows:
            columns = [list(column) for column in zip(*rows, strict=True)]
            await window.conn.execute(QUERIES["insert_deliveries"], *columns)

    def delivery_rows(
        self, window: Window, batches: dict[tuple[uuid.UUID, uuid.UUID | None], list[Log]]
    ) -> Iterable[tuple[Any, ...]]:
        settings = window.settings
        for (subscription_id, request_id), logs in batches.items():
            subscription = window.subscriptions[subscription_id]
            envelope = {
                "type": "backfill.matches",
                "subscription_id": str(subscription_id),
                "backfill_id": str(request_id) if request_id else None,
                "chain_id": window.chain_id,
            }
            events = [event_body(window.chain_id, e, subscription.decoder) for e in logs]
            for batch in split_events(
                events,
                settings.webhook_max_events_per_delivery,
                settings.webhook_max_body_bytes,
                envelope,
            ):
                yield (
                    subscription_id,
                    subscription.workspace_id,
                    request_id,
                    {**envelope, "events": batch},
                    len(batch),
                    batch[0]["block_number"],
                )

    async def apply(self, window: Window) -> None:
        """Advance every live request (compare-and-set), then coverage and pauses."""
        cu_each = window.take_cu() // max(1, len(self.parts))
        covered: dict[uuid.UUID, Blocks] = defaultdict(list)
        for request_id, done in self.done.items():
            request = window.requests[request_id]
            remaining = intervals.subtract_all(request.remaining, done)
            if not remaining:
                status = "completed"
                self.completed.add(request_id)
            elif request.workspace_id in self.paused_workspaces:
                status = "paused_credits"
            else:
                status = "processing"
            advanced = await window.conn.fetchval(
                QUERIES["advance_request"],
                request_id,
                request.cursor,
                intervals.to_ranges(remaining),
                intervals.cursor_of(remaining, request.order),
                status,
                intervals.size(done),
                self.found_by_request.get(request_id, 0),
                self.new_by_request.get(request_id, 0),
                self.duplicates_by_request.get(request_id, 0),
                self.new_by_request.get(request_id, 0),
                cu_each,
            )
            if advanced is None:  # the cursor moved under us: another leader
                raise LeaseLost(f"request {request_id}: cursor changed during the window")
            covered[request.subscription_id].extend(done)
            window.stats.served.add(request_id)
        for subscription_id, blocks in covered.items():
            if blocks:
                await window.conn.execute(
                    QUERIES["add_coverage"],
                    subscription_id,
                    intervals.to_ranges(intervals.normalise(blocks)),
                )
        if self.paused_workspaces:
            await window.conn.execute(
                QUERIES["pause_workspace_requests"], list(self.paused_workspaces), window.chain_id
            )

    def after_commit(self, window: Window) -> None:
        """The transaction is committed: the window's view follows it."""
        for request_id, done in self.done.items():
            request = window.requests[request_id]
            request.remaining = intervals.subtract_all(request.remaining, done)
            request.cursor = intervals.cursor_of(request.remaining, request.order)
        for request_id in list(window.requests):
            request = window.requests[request_id]
            if request_id in self.completed or request.workspace_id in self.paused_workspaces:
                del window.requests[request_id]
