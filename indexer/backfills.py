"""Backfill requests as their owner sees them: accept, estimate, read, pause/resume/cancel/retry.

The window (`indexer.window`, through `indexer.store`) moves a request's cursor, counters and status
while it scans; this module creates requests, answers what one would cost (dry
run) and applies the owner's transitions, each as one conditional UPDATE so it
cannot race with a window's compare-and-set.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from indexer import intervals
from indexer.chain.filters import subscription_filter
from indexer.chain.fragments import Fragment, covered_blocks, fragments_of
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.domain import FINISHED, BackfillStatus, Order
from indexer.errors import NotFound
from indexer.intervals import Blocks
from indexer.pagination import decode_cursor, encode_cursor
from indexer.refusals import (
    Conflict,
    FieldError,
    IdempotencyKeyInFlight,
    InvalidFields,
    NotPermitted,
)
from indexer.settings import ChainSettings
from indexer.subscriptions import require_subscription
from indexer.window.eta import calls_for, estimate_behind, estimate_request

Action = Literal["pause", "resume", "cancel", "retry"]
# What each owner action needs the request to be, said in the 409 when it is not.
ALLOWED_FROM: Mapping[str, str] = {
    "pause": "queued, processing, following, paused_credits or blocked",
    "resume": "paused",
    "cancel": "queued, processing, following, paused_credits, paused or blocked",
    "retry": "failed",
}

# Requests queued since the chain's window last counted its queue that accepting a
# request still adds up one by one (more only while no worker runs; then no estimate
# holds anyway). Bounds what a POST costs, whatever the queue's length. The LIMIT of
# `backfill_context` (sql/backfills.sql), a constant there so that its plan is cached.
RECENT_QUEUE_LIMIT = 200


@dataclass(frozen=True)
class BackfillSpec:
    subscription_id: uuid.UUID
    from_block: int | None = None
    to_block: int | Literal["safe", "follow"] | None = None
    labels: Mapping[str, str] | None = None
    order: Order = "asc"
    rescan: bool = False
    redeliver: bool = False


@dataclass(frozen=True)
class DryRun:
    blocks: int
    already_covered_blocks: int
    cached_blocks: int
    estimated_calls: int
    estimated_cu: int
    estimated_windows: int
    estimated_start_at: datetime
    estimated_finish_at: datetime
    # A follow request, after the blocks above: CU an hour of following costs at the
    # chain's recent pace (None: not a follow request, or the pace is not known yet).
    following_cu_per_hour: int | None = None


def following_cu_per_hour(
    chain: ChainSettings, *, block_seconds: float | None, logs_per_block: float | None
) -> int | None:
    """CU an hour of following costs: each window with new safe blocks makes at least
    one verified eth_getLogs call, and as many as the new blocks need at the span the
    chain's density allows (`max_logs_in_flight` over the calls in flight), and reads
    two recorded blocks again (the reorg check). The head read is the window's, paid
    whether or not anything follows."""
    if block_seconds is None:
        return None
    blocks_per_hour = 3600 / block_seconds
    span = chain.max_block_range
    if logs_per_block:
        per_call = chain.max_logs_in_flight / chain.max_calls_in_flight
        span = max(1, min(span, int(per_call / logs_per_block)))
    windows_per_hour = 3600 / chain.tick_seconds
    windows = min(windows_per_hour, blocks_per_hour)  # those with a new safe block
    calls = max(windows, blocks_per_hour / span)
    verified = chain.verify_depth_blocks or chain.reorg_zone()
    verify = chain.cu_cost("eth_getBlockByNumber") if verified else 0
    return math.ceil(
        calls * (chain.cu_cost("eth_getLogs") + verify) + windows * chain.reorg_check_cu()
    )


def not_found(backfill_id: uuid.UUID) -> NotFound:
    return NotFound(f"backfill {backfill_id} not found")


def resolve_range(
    spec: BackfillSpec, *, head: int | None, safe_head: int | None, max_blocks: int
) -> tuple[int, int]:
    """The inclusive block range a request covers; 422 naming every bad field.

    One side only means that single block. A `to_block` past the chain's known
    head is refused; before any head is known, any range is accepted (the
    window waits for the chain to get there).
    """
    to_block: int | None
    if spec.to_block == "follow":
        return _follow_range(spec, head=head, safe_head=safe_head, max_blocks=max_blocks)
    if spec.to_block == "safe":
        if safe_head is None:
            raise InvalidFields.one("/to_block", "no safe head is known for this chain yet")
        to_block = safe_head
    else:
        to_block = spec.to_block
    low = spec.from_block if spec.from_block is not None else to_block
    high = to_block if to_block is not None else spec.from_block
    if low is None or high is None:
        raise InvalidFields.one("/from_block", "give from_block, to_block or both")
    errors: list[FieldError] = []
    if low > high:
        errors.append(FieldError("/to_block", f"to_block {high} is before from_block {low}"))
    else:
        errors += _within_plan(low, high, max_blocks, "/to_block", "the range")
    errors += _known(high, head, "/to_block")
    if errors:
        raise InvalidFields(errors)
    return low, high


def _within_plan(low: int, high: int, max_blocks: int, pointer: str, what: str) -> list[FieldError]:
    """The plan's blocks per request, named at `pointer` if [low, high] spans more."""
    if high - low + 1 <= max_blocks:
        return []
    return [
        FieldError(
            pointer,
            f"{what} spans {high - low + 1} blocks; your plan allows at most "
            f"{max_blocks} blocks per request",
        )
    ]


def _known(block: int, head: int | None, pointer: str) -> list[FieldError]:
    """A block past the chain's known head is refused (any, before a head is known)."""
    if head is None or block <= head:
        return []
    return [FieldError(pointer, f"block {block} is beyond the chain's known head {head}")]


def _follow_range(
    spec: BackfillSpec, *, head: int | None, safe_head: int | None, max_blocks: int
) -> tuple[int, int]:
    """A follow request's range so far: from `from_block` to the safe head (or just
    `from_block`, where the safe head has not got there: it waits for it). The plan's
    limit applies to this historical part; what follows is scanned as it comes."""
    errors: list[FieldError] = []
    if spec.from_block is None:
        errors.append(FieldError("/from_block", "a follow request needs from_block"))
    if spec.order != "asc":
        errors.append(FieldError("/order", "a follow request scans upwards: order asc"))
    if errors:
        raise InvalidFields(errors)
    assert spec.from_block is not None
    low = spec.from_block
    high = max(low, safe_head) if safe_head is not None else low
    errors += _within_plan(low, high, max_blocks, "/from_block", "following from here, the range")
    errors += _known(low, head, "/from_block")
    if errors:
        raise InvalidFields(errors)
    return low, high


def require_rules(*, backfill_enabled: bool, stored_events: bool) -> None:
    """A request may run only while its plan includes backfill (403 otherwise) and its
    subscription stores events (409 otherwise)."""
    if not backfill_enabled:
        raise NotPermitted(
            "your workspace's plan does not include backfill; upgrade the plan to use it",
            "backfill-not-in-plan",
        )
    if not stored_events:
        raise Conflict(
            "the subscription does not store events (stored_events is false); "
            "backfill needs stored events",
            "stored-events-disabled",
        )


async def load_context(
    conn: Connection, workspace_id: uuid.UUID, subscription_id: uuid.UUID, key: str | None
) -> asyncpg.Record:
    """What accepting a request depends on (unchecked), and with an Idempotency-Key
    the key's record, trying its lock (`idempotency.stored_response` reads those
    columns): one round trip, in a transaction or on its own."""
    row: asyncpg.Record | None = await queries.fetchrow(
        conn,
        "backfill_context",
        workspace_id=workspace_id,
        subscription_id=subscription_id,
        key=key,
    )
    assert row is not None, "an authenticated workspace exists"
    return row


def check_context(
    ctx: asyncpg.Record, spec: BackfillSpec, chains: Mapping[int, Any]
) -> asyncpg.Record:
    """The plan, subscription and chain a request depends on, checked in the order
    a client fixes them: plan (403), subscription (404), stored events (409), chain."""
    require_rules(backfill_enabled=ctx["backfill_enabled"], stored_events=True)
    if ctx["subscription_id"] is None:
        raise NotFound(f"subscription {spec.subscription_id} not found")
    require_rules(backfill_enabled=True, stored_events=ctx["stored_events"])
    if ctx["chain_id"] not in chains:
        raise InvalidFields.one(
            "/subscription_id", f"the subscription's chain {ctx['chain_id']} is not served here"
        )
    return ctx


async def _context(
    conn: Connection,
    workspace_id: uuid.UUID,
    spec: BackfillSpec,
    chains: Mapping[int, Any],
    loaded: asyncpg.Record | None = None,
) -> asyncpg.Record:
    row = loaded or await load_context(conn, workspace_id, spec.subscription_id, None)
    return check_context(row, spec, chains)


def _estimate(
    ctx: asyncpg.Record,
    spec: BackfillSpec,
    chains: Mapping[int, ChainSettings],
    now: datetime,
) -> tuple[int, int, DryRun]:
    """The request's range, and what it would scan, cost, and when it would start and
    finish behind the chain's queue: the same estimate the dry run shows, the 202
    carries and each window refreshes (`window.eta`)."""
    low, high = resolve_range(
        spec, head=ctx["head"], safe_head=ctx["safe_head"], max_blocks=ctx["max_backfill_blocks"]
    )
    wanted: Blocks = [(low, high)]
    if not (spec.rescan or spec.redeliver) and ctx["covered"] is not None:
        wanted = intervals.subtract_all(wanted, intervals.from_ranges(ctx["covered"]))
    blocks = high - low + 1
    covered = blocks - intervals.size(wanted)
    cache = cached_blocks(ctx)
    cached = intervals.size(intervals.overlap(wanted, cache))
    chain = chains[ctx["chain_id"]]
    span = min(ctx["learned_block_range"] or chain.max_block_range, chain.max_block_range)
    call_cu, head_cu = chain.cu_cost("eth_getLogs"), chain.head_read_cu()
    calls, cu, windows = estimate_request(
        blocks - covered - cached,
        span=span,
        call_cu=call_cu,
        window_cu=chain.window_budget_cu,
        head_cu=head_cu,
        verified_calls=verified_calls(intervals.subtract_all(wanted, cache), span, ctx, chain),
        verify_cu=chain.cu_cost("eth_getBlockByNumber"),
    )
    calls_before = (ctx["queue_calls"] or 0) + sum(
        calls_for(recent, span) for recent in ctx["recent_blocks"] or []
    )
    eta = estimate_behind(
        calls_before,
        calls_for(blocks - covered - cached, span),
        now=now,
        call_cu=call_cu,
        window_cu=chain.window_budget_cu,
        head_cu=head_cu,
        tick_seconds=chain.tick_seconds,
    )
    per_hour = None
    if spec.to_block == "follow":
        per_hour = following_cu_per_hour(
            chain, block_seconds=ctx["block_seconds"], logs_per_block=ctx["learned_logs_per_block"]
        )
    return (
        low,
        high,
        DryRun(blocks, covered, cached, calls, cu, windows, eta.start_at, eta.finish_at, per_hour),
    )


def verified_calls(to_scan: Blocks, span: int, ctx: asyncpg.Record, chain: ChainSettings) -> int:
    """Calls that will be verified (they end within `chain.verified_depth` blocks of the
    head), at most: those over the blocks above that depth, and the one that crosses it.
    A window that makes them also pays the reorg check (`reorg_check_cu`, two headers),
    counted here as two more verifications per call: an upper bound."""
    head = ctx["head"]
    if head is None or not to_scan:
        return 0
    depth = chain.verified_depth(head, ctx["safe_head"])
    if not depth:
        return 0
    near = intervals.size(intervals.intersect(to_scan, head - depth + 1, to_scan[-1][1]))
    crossing = 1 if 0 < near < intervals.size(to_scan) else 0
    calls = calls_for(near, span) + crossing
    return calls * (3 if chain.reorg_check_cu() and calls else 1)


def cached_blocks(ctx: asyncpg.Record) -> Blocks:
    """Blocks where the chain's log cache holds every log the subscription's filter
    matches (served from the database when the request gets there, at no CU)."""
    pieces = fragments_of(subscription_filter(ctx["addresses"], ctx["topics"]))
    if not pieces or ctx["fragment_addresses"] is None:
        return []
    stored = {
        Fragment.from_row(address, topics): intervals.from_ranges(covered)
        for address, topics, covered in zip(
            ctx["fragment_addresses"], ctx["fragment_topics"], ctx["fragment_covered"], strict=True
        )
    }
    return covered_blocks(pieces, stored)


def _jsonb_order(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels in the order jsonb keeps an object's keys (shorter first, then by their
    UTF-8 bytes), as a request read back from the database shows them."""
    return dict(sorted(labels.items(), key=lambda item: (len(b := item[0].encode()), b)))


def new_backfill(
    workspace_id: uuid.UUID,
    spec: BackfillSpec,
    chains: Mapping[int, ChainSettings],
    ctx: asyncpg.Record,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The request accepting `spec` creates, checked (403, 404, 409, 422) and estimated:
    every column `get_backfill` reads back once `insert_backfill` stored it, so the
    answer is known without reading it back. Its `created_at` is the database's clock
    when `ctx` was read (`backfill_context`'s `now`); `now` is the estimate's clock."""
    check_context(ctx, spec, chains)
    low, high, estimate = _estimate(ctx, spec, chains, now)
    created_at: datetime = ctx["now"]
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "subscription_id": spec.subscription_id,
        "chain_id": ctx["chain_id"],
        "status": "queued",
        "from_block": low,
        "to_block": high,
        "block_order": spec.order,
        "cursor": high if spec.order == "desc" else low,
        "rescan": spec.rescan,
        "redeliver": spec.redeliver,
        "labels": _jsonb_order(spec.labels or {}),
        "blocks_scanned": 0,
        "matches": 0,
        "new_matches": 0,
        "duplicate_matches": 0,
        "matches_removed": 0,
        "credits_charged": 0,
        "cu_spent": 0,
        "windows": 0,
        "error": None,
        "estimated_start_at": estimate.estimated_start_at,
        "estimated_finish_at": estimate.estimated_finish_at,
        "last_transient_error": None,
        "last_transient_error_at": None,
        "blocked_reason": None,
        "created_at": created_at,
        "started_at": None,
        "finished_at": None,
        "updated_at": created_at,
        "remaining_blocks": None,
        "follow": spec.to_block == "follow",
        "lag_blocks": None,
        "lag_seconds": None,
    }


async def insert_backfill(
    conn: Connection, row: Mapping[str, Any], claim: Mapping[str, Any] | None = None
) -> None:
    """Store a `new_backfill`; with `claim` (`idempotency.Claim.columns`) in the same
    statement as the Idempotency-Key's claim, refused as in flight (409, nothing
    stored) when the key is taken. The database has the last word on the subscription:
    one deleted since the context was read is a 404 (its foreign key)."""
    columns = {
        name: row[name]
        for name in (
            "id",
            "workspace_id",
            "subscription_id",
            "chain_id",
            "from_block",
            "to_block",
            "block_order",
            "rescan",
            "redeliver",
            "labels",
            "estimated_start_at",
            "estimated_finish_at",
            "created_at",
            "follow",
        )
    }
    try:
        if claim is None:
            await queries.fetchval(conn, "insert_backfill", **columns)
            return
        claimed = await queries.fetchval(conn, "insert_backfill_claiming_key", **columns, **claim)
    except asyncpg.ForeignKeyViolationError as exc:
        # Deleted since its context was read: what a POST a moment later would answer.
        if exc.constraint_name == "backfill_requests_subscription_id_fkey":
            raise NotFound(f"subscription {row['subscription_id']} not found") from None
        raise
    if claimed is None:
        raise IdempotencyKeyInFlight()


async def create_backfill(
    conn: Connection,
    workspace_id: uuid.UUID,
    spec: BackfillSpec,
    chains: Mapping[int, ChainSettings],
    *,
    now: datetime | None = None,
    context: asyncpg.Record | None = None,
) -> dict[str, Any]:
    """Queue a request, with its estimated start and finish (call inside the caller's
    transaction with its idempotency claim; `context` if `load_context` was read in it)."""
    ctx = await _context(conn, workspace_id, spec, chains, context)
    row = new_backfill(workspace_id, spec, chains, ctx, now=now or datetime.now(UTC))
    await insert_backfill(conn, row)
    return row


async def dry_run(
    conn: Connection,
    workspace_id: uuid.UUID,
    spec: BackfillSpec,
    chains: Mapping[int, ChainSettings],
    *,
    now: datetime,
    context: asyncpg.Record | None = None,
) -> DryRun:
    """What the request would scan and cost, and when it would run behind the queue."""
    ctx = await _context(conn, workspace_id, spec, chains, context)
    _, _, estimate = _estimate(ctx, spec, chains, now)
    return estimate


def progress(row: asyncpg.Record | Mapping[str, Any]) -> float:
    """Share of the range done: 1 once completed; covered blocks skipped count as done."""
    if row["status"] in FINISHED:
        return 1.0
    remaining: int | None = row["remaining_blocks"]
    if remaining is None:
        return 0.0
    total: int = row["to_block"] - row["from_block"] + 1
    return round(max(0.0, min(1.0, 1 - remaining / total)), 6)


async def get_backfill(
    conn: Connection, workspace_id: uuid.UUID, backfill_id: uuid.UUID
) -> asyncpg.Record:
    row: asyncpg.Record | None = await queries.fetchrow(
        conn, "get_backfill", backfill_id=backfill_id, workspace_id=workspace_id
    )
    if row is None:
        raise not_found(backfill_id)
    return row


async def list_backfills(
    conn: Connection,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    *,
    status: BackfillStatus | None,
    limit: int,
    after: str | None,
) -> tuple[list[asyncpg.Record], str | None]:
    """The request history of a subscription, newest first."""
    await require_subscription(conn, workspace_id, subscription_id)
    created_at: datetime | None = None
    last_id: uuid.UUID | None = None
    if after is not None:
        stamp, text_id = decode_cursor(after, "backfills", (str, str))
        try:
            created_at, last_id = datetime.fromisoformat(stamp), uuid.UUID(text_id)
        except ValueError:
            raise InvalidFields.one("after", "not a cursor of this list", parameter=True) from None
    rows = await queries.fetch(
        conn,
        "list_backfills",
        subscription_id=subscription_id,
        workspace_id=workspace_id,
        status=status,
        after_created_at=created_at,
        after_id=last_id,
        limit=limit + 1,
    )
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        cursor = encode_cursor("backfills", page[-1]["created_at"].isoformat(), str(page[-1]["id"]))
    return page, cursor


async def apply_action(
    conn: Connection, workspace_id: uuid.UUID, backfill_id: uuid.UUID, action: Action
) -> asyncpg.Record:
    """One conditional UPDATE; when it changes nothing, 409 names the current status.
    A request goes on (resume, retry) only while it may run: 403 or 409 otherwise."""
    async with conn.transaction():
        if action in ("resume", "retry"):
            rules = await queries.fetchrow(
                conn, "backfill_rules", backfill_id=backfill_id, workspace_id=workspace_id
            )
            if rules is None:
                raise not_found(backfill_id)
            require_rules(
                backfill_enabled=rules["backfill_enabled"], stored_events=rules["stored_events"]
            )
        changed = await queries.fetchval(
            conn, f"{action}_backfill", backfill_id=backfill_id, workspace_id=workspace_id
        )
        if changed is None:
            status = await queries.fetchval(
                conn, "backfill_status", backfill_id=backfill_id, workspace_id=workspace_id
            )
            if status is None:
                raise not_found(backfill_id)
            raise Conflict(
                f"cannot {action} a backfill that is {status}; "
                f"only {ALLOWED_FROM[action]} backfills can be {_past(action)}",
                "invalid-transition",
                backfill_status=status,
            )
        return await get_backfill(conn, workspace_id, backfill_id)


def _past(action: Action) -> str:
    return {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "retry": "retried"}[
        action
    ]


async def recent_backfills(
    conn: Connection, workspace_id: uuid.UUID, limit: int = 10
) -> list[asyncpg.Record]:
    """A workspace's newest requests across its subscriptions."""
    rows: list[asyncpg.Record] = await queries.fetch(
        conn, "recent_backfills", workspace_id=workspace_id, limit=limit
    )
    return rows


async def count_by_status(conn: Connection, workspace_id: uuid.UUID) -> dict[str, int]:
    rows = await queries.fetch(conn, "count_backfills_by_status", workspace_id=workspace_id)
    return {row["status"]: row["requests"] for row in rows}


async def request_windows(
    conn: Connection, workspace_id: uuid.UUID, backfill_id: uuid.UUID, limit: int = 200
) -> list[asyncpg.Record]:
    """The last `limit` windows that advanced a request, oldest first (404 if not ours)."""
    await get_backfill(conn, workspace_id, backfill_id)
    rows = await queries.fetch(
        conn, "backfill_windows", backfill_id=backfill_id, workspace_id=workspace_id, limit=limit
    )
    return list(reversed(rows))
