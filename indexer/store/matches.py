"""Storing a chunk's candidate matches: two ways, one bookkeeping.

- Balances cover every candidate (the usual case): one COPY stages candidates
  with their logs, straight from the provider's hex (`store.staging`), and two
  set-based statements store the logs and the matches, returning how many were
  new; exactly those are charged.
- Some workspace cannot pay for all: the logs are stored first, the matches that
  are new found, paid in scan order up to the balance (`credits.paid_cutoff`),
  and only the paid ones stored; that workspace's requests stop at the first
  unpaid block.

Either way the result is the same `Tally` update (`settle`): per-request counts,
the debit with its ledger line, and the outbox rows.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter, defaultdict
from typing import NamedTuple

import asyncpg

from indexer import intervals
from indexer.chain.errors import ProviderFault
from indexer.db import queries
from indexer.outbox.enqueue import Batch, enqueue
from indexer.store import staging
from indexer.store.chunk import ChunkPlan, CommitContext, StoredMatch, Tally
from indexer.store.credits import debit, lock_balances, paid_cutoff


class LogRow(NamedTuple):
    """A log as the columns of `window_logs` (bytes, for the binary COPY)."""

    chain_id: int
    block_number: int
    block_hash: bytes
    log_index: int
    transaction_hash: bytes
    transaction_index: int
    address: bytes
    topics: list[bytes]
    data: bytes


LogKey = tuple[int, int]  # (block_number, log_index): a log's place on its chain


async def store_matches(ctx: CommitContext, tally: Tally) -> None:
    """Logs and paid matches, credits, ledger, outbox."""
    plan = tally.plan
    wanted = Counter(ctx.targets[c.subscription_id].workspace_id for c in plan.candidates)
    balances = await lock_balances(ctx.conn, wanted)
    await find_own_matches(ctx, tally)
    if all(balances[w] >= n for w, n in wanted.items()):
        paid, duplicates = await store_staged(ctx, tally)  # no cut-off to find
    else:
        paid, duplicates = await store_counted(ctx, tally, balances)
    await settle(ctx, tally, paid, duplicates)


async def settle(
    ctx: CommitContext, tally: Tally, paid: list[StoredMatch], duplicates: list[StoredMatch]
) -> None:
    """What both write paths end with: counts, the debit, the outbox."""
    tally.count(paid, duplicates)
    chunk = tally.plan.chunk
    note = f"chain {ctx.chain_id} blocks {chunk.from_block}-{chunk.to_block}"
    await debit(ctx.conn, tally.charges, window_id=ctx.window_id, note=note)
    await enqueue(
        ctx.conn, ctx.chain_id, delivery_batches(ctx, tally, paid, duplicates), ctx.outbox
    )


async def find_own_matches(ctx: CommitContext, tally: Tally) -> None:
    """Matches a request stored before it paused for credits in the middle of a block:
    they come back as candidates when it goes on, and must not count twice."""
    keys = []
    for request_id, part in tally.plan.parts.items():
        request = ctx.requests[request_id]
        block = request.recount_block
        if block is not None and intervals.contains(part, block):
            keys.append((request.subscription_id, block, request_id))
    if not keys:
        return
    rows = await queries.fetch(
        ctx.conn,
        "own_stored_matches",
        subscription_ids=[k[0] for k in keys],
        blocks=[k[1] for k in keys],
        request_ids=[k[2] for k in keys],
    )
    wanted = {(k[0], k[1]) for k in keys}
    found_again = {
        (c.subscription_id, c.log.block_number, c.log.log_index)
        for c in tally.plan.candidates
        if (c.subscription_id, c.log.block_number) in wanted
    }
    for row in rows:
        key = (row["subscription_id"], row["block_number"], row["log_index"])
        if key in found_again:
            tally.own[key] = row["backfill_request_id"]


def detailed(ctx: CommitContext, tally: Tally) -> set[uuid.UUID]:
    """Subscriptions whose new matches are needed one by one, not just counted:
    those with a webhook (outbox) or with several requests sharing the chunk."""
    return {
        subscription_id
        for subscription_id, request_ids in tally.plan.requests_by_subscription.items()
        if len(request_ids) > 1 or ctx.targets[subscription_id].sends_webhooks
    }


async def store_staged(
    ctx: CommitContext, tally: Tally
) -> tuple[list[StoredMatch], list[StoredMatch]]:
    """Every candidate is affordable: logs and matches go in by COPY and two statements.

    Subscriptions whose new matches are needed one by one (`detailed`) come back as
    lists; the others are only counted, per request, here."""
    await copy_candidates(ctx, tally.plan)
    if not tally.plan.chunk.cached:
        await queries.execute(ctx.conn, "insert_staged_logs", chain_id=ctx.chain_id)
    one_by_one = detailed(ctx, tally)
    rows = await queries.fetch(
        ctx.conn,
        "insert_staged_matches",
        detailed_subscription_ids=list(one_by_one),
    )
    new_keys: set[tuple[uuid.UUID, int, int]] = set()
    new_of: Counter[uuid.UUID] = Counter()
    for row in rows:
        subscription_id, request_id = row["subscription_id"], row["backfill_request_id"]
        new_of[subscription_id] += row["new_matches"]
        tally.charge(ctx.targets[subscription_id].workspace_id, row["new_matches"], request_id)
        if subscription_id in one_by_one:
            keys = zip(row["block_numbers"], row["log_indexes"], strict=True)
            new_keys.update((subscription_id, block, index) for block, index in keys)
        elif request_id is not None:
            tally.new[request_id] += row["new_matches"]
    count_undetailed(tally, one_by_one, new_of)
    paid: list[StoredMatch] = []
    duplicates: list[StoredMatch] = []
    for subscription_id, entry in tally.plan.candidates:
        if subscription_id in one_by_one:
            is_new = (subscription_id, entry.block_number, entry.log_index) in new_keys
            (paid if is_new else duplicates).append(StoredMatch(subscription_id, entry))
    return paid, duplicates


async def copy_candidates(ctx: CommitContext, plan: ChunkPlan) -> None:
    """The chunk's candidates and their logs into `window_matches`, by one COPY; a field
    PostgreSQL refuses is the provider's fault (nothing is stored, the request waits)."""
    try:
        await ctx.conn.copy_to_table(
            "window_matches",
            source=io.BytesIO(plan.staged()),
            columns=staging.COLUMNS,
            format="text",
        )
    except asyncpg.DataError as exc:
        raise ProviderFault(
            f"eth_getLogs for blocks {plan.chunk.from_block}-{plan.chunk.to_block} "
            f"returned a log that is not hex: {exc}"
        ) from exc


def count_undetailed(tally: Tally, one_by_one: set[uuid.UUID], new_of: Counter[uuid.UUID]) -> None:
    """Found and duplicate matches of the subscriptions only counted (one request each)."""
    found_of = Counter(
        c.subscription_id for c in tally.plan.candidates if c.subscription_id not in one_by_one
    )
    own_of = Counter(s for s, _, _ in tally.own if s not in one_by_one)
    for subscription_id, found in found_of.items():
        (request_id,) = tally.plan.requests_by_subscription[subscription_id]
        counted_before = own_of[subscription_id]  # its own, paid before a credit pause
        tally.found[request_id] += found - counted_before
        tally.duplicates[request_id] += found - new_of[subscription_id] - counted_before


_LOG_COLUMNS = LogRow._fields


async def store_counted(
    ctx: CommitContext, tally: Tally, balances: dict[uuid.UUID, int]
) -> tuple[list[StoredMatch], list[StoredMatch]]:
    """Some workspace cannot pay for every candidate: find which matches are new
    first, pay them in scan order up to the balance, then store the paid ones."""
    conn = ctx.conn
    if not tally.plan.chunk.cached:
        rows: dict[LogKey, LogRow] = {}
        for _, entry in tally.plan.candidates:
            key = (entry.block_number, entry.log_index)
            if key not in rows:
                rows[key] = LogRow(ctx.chain_id, *entry.row_values())
        await conn.copy_records_to_table("window_logs", records=rows.values(), columns=_LOG_COLUMNS)
        await queries.execute(conn, "insert_window_logs")
    matches = [StoredMatch(s, entry) for s, entry in tally.plan.candidates]
    found = await queries.fetch(
        conn,
        "existing_matches",
        subscription_ids=[m.subscription_id for m in matches],
        block_numbers=[m.log.block_number for m in matches],
        log_indexes=[m.log.log_index for m in matches],
    )
    existing = {(row["subscription_id"], row["block_number"], row["log_index"]) for row in found}
    new = [m for m in matches if m.key not in existing]
    duplicates = [m for m in matches if m.key in existing]
    return await pay(ctx, tally, new, balances), duplicates


async def pay(
    ctx: CommitContext, tally: Tally, new: list[StoredMatch], balances: dict[uuid.UUID, int]
) -> list[StoredMatch]:
    """Pay new matches in scan order up to each workspace's balance; store the paid."""
    plan = tally.plan
    by_workspace: dict[uuid.UUID, list[StoredMatch]] = defaultdict(list)
    for match in new:
        by_workspace[ctx.targets[match.subscription_id].workspace_id].append(match)
    paid: list[StoredMatch] = []
    for workspace_id, matches in by_workspace.items():
        keys = [(m.log.block_number, m.log.log_index) for m in matches]
        count, cut = paid_cutoff(keys, balances[workspace_id])
        paid.extend(matches[:count])
        if cut is not None:
            tally.cut_workspace(ctx.requests, workspace_id, cut)
    if not paid:
        return []
    owners = [plan.owner(m.subscription_id, m.log.block_number) for m in paid]
    inserted = await queries.fetch(
        ctx.conn,
        "insert_matches",
        subscription_ids=[m.subscription_id for m in paid],
        block_numbers=[m.log.block_number for m in paid],
        log_indexes=[m.log.log_index for m in paid],
        backfill_request_ids=owners,
    )
    stored = {(row["subscription_id"], row["block_number"], row["log_index"]) for row in inserted}
    kept = []
    for match, owner in zip(paid, owners, strict=True):
        if match.key in stored:
            tally.charge(ctx.targets[match.subscription_id].workspace_id, 1, owner)
            kept.append(match)
    return kept


def delivery_batches(
    ctx: CommitContext, tally: Tally, paid: list[StoredMatch], duplicates: list[StoredMatch]
) -> list[Batch]:
    """Outbox batches for webhook-enabled subscriptions: their new matches under the
    request that owns each, and stored matches a redeliver request asked for again."""
    logs: dict[tuple[uuid.UUID, uuid.UUID | None], list[StoredMatch]] = defaultdict(list)
    for match in paid:
        if ctx.targets[match.subscription_id].sends_webhooks:
            owner = tally.plan.owner(match.subscription_id, match.log.block_number)
            logs[(match.subscription_id, owner)].append(match)
    for match in duplicates:
        if not ctx.targets[match.subscription_id].sends_webhooks:
            continue
        asked = tally.requests_of(match.subscription_id, match.log.block_number, paid=False)
        redelivering = [r for r in asked if r in ctx.redeliver]
        if redelivering:
            logs[(match.subscription_id, redelivering[0])].append(match)
    batches = []
    for (subscription_id, request_id), matches in logs.items():
        target = ctx.targets[subscription_id]
        batches.append(
            Batch(
                subscription_id,
                target.workspace_id,
                request_id,
                target.decoder,
                [m.log for m in matches],
            )
        )
    return batches
