"""`logfill worker` processes on a real anvil and a real PostgreSQL: kill -9 and two leaders.

The invariants of docs/architecture.md as an operator meets them: workers die at any
moment (SIGKILL, no clean-up) and are restarted, and several workers share one database.
The outcome must be what one uninterrupted worker produces, and each tick's window of a
chain must run in exactly one process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from indexer.db.pool import connect
from indexer.domain import TERMINAL
from indexer.outbox.bodies import event_id
from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.database import throwaway_database
from tests.support.factories import make_workspace
from tests.support.processes import Workers
from tests.support.window import (
    create_backfill,
    create_subscription,
    keys_of,
    run_until_settled,
    stored_matches,
    window_pool,
    window_settings,
)

CHAIN_ID = 1
TICK = 0.5  # seconds between a chain's windows
LEASE = 2.0  # a dead leader blocks its chain this long at most
WEBHOOK = "https://receiver.example/hook"
CREDITS = 10_000


# --------------------------------------------------------------------------- processes


@pytest.fixture
def workers(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    started = Workers(dict(cli_env, LOGFILL_WORKER_METRICS_PORT="0"), tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def configure_chain(workers: Workers, rpc_url: str, **chain_config: Any) -> None:
    config = {
        "rpc_url": rpc_url,
        "confirmations": 0,
        "tick_seconds": TICK,
        "lease_seconds": LEASE,
        **chain_config,
    }
    workers.env["LOGFILL_CHAINS"] = json.dumps({str(CHAIN_ID): config})


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    workers: Workers,
    poll: float = 0.05,
) -> None:
    """Poll `check` until it holds; on timeout, fail with the workers' last output."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.name}\n{w.output()}" for w in workers.started[-2:])
            raise AssertionError(f"{what}: not within {timeout} s\n{tails}")
        await asyncio.sleep(poll)


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Chain:
    url: str
    contracts: list[str]
    low: int
    high: int


def fill_two_emitters(url: str, logs_each: int, *, segments: int) -> Chain:
    """Two Emitters, `logs_each` logs each, 5 logs a block, in alternating runs of blocks."""
    contracts = [chain.deploy_emitter(url) for _ in range(2)]
    per_segment = logs_each // segments
    low: int | None = None
    for segment in range(segments):
        for k, address in enumerate(contracts):
            first, _ = chain.fill_logs(
                url, address, per_segment, per_tx=5, seed=1000 * segment + 100 * k, txs_per_block=1
            )
            low = first if low is None else low
    assert low is not None
    return Chain(url, contracts, low, chain.block_number(url))


@dataclass(frozen=True)
class Backfill:
    workspace: uuid.UUID
    subscriptions: dict[str, uuid.UUID]  # contract address -> subscription
    requests: dict[str, uuid.UUID]  # contract address -> its request over the whole range


async def queue_backfill(conn: asyncpg.Connection, on: Chain, *, follow: bool = False) -> Backfill:
    """One workspace; per contract a webhook subscription and one request over everything
    (that goes on following the chain, with `follow`)."""
    workspace = await make_workspace(conn, credits=CREDITS)
    subscriptions, requests = {}, {}
    for address in on.contracts:
        subscription = await create_subscription(
            conn, workspace, chain_id=CHAIN_ID, addresses=[address], webhook_url=WEBHOOK
        )
        subscriptions[address] = subscription
        requests[address] = await create_backfill(
            conn, subscription, on.low, on.high, follow=follow
        )
    return Backfill(workspace, subscriptions, requests)


async def all_terminal(conn: asyncpg.Connection, backfill: Backfill) -> bool:
    statuses = await conn.fetch(
        "SELECT status FROM backfill_requests WHERE id = ANY($1::uuid[])",
        list(backfill.requests.values()),
    )
    return all(row["status"] in TERMINAL for row in statuses)


async def outcome(conn: asyncpg.Connection, backfill: Backfill) -> dict[str, Any]:
    """What a user can see of a finished backfill, keyed by contract (not by database ids)."""
    per_contract: dict[str, Any] = {}
    for address, subscription in backfill.subscriptions.items():
        request = await conn.fetchrow(
            """
            SELECT status, cursor, matches, new_matches, duplicate_matches, credits_charged,
                   blocks_scanned, error
            FROM backfill_requests WHERE id = $1
            """,
            backfill.requests[address],
        )
        assert request is not None
        delivered = await conn.fetch(
            """
            SELECT e->>'id' AS id
            FROM webhook_deliveries d, jsonb_array_elements(d.payload->'events') e
            WHERE d.subscription_id = $1
            """,
            subscription,
        )
        coverage = await conn.fetchval(
            "SELECT covered::text FROM subscription_coverage WHERE subscription_id = $1",
            subscription,
        )
        per_contract[address] = {
            "matches": await stored_matches(conn, subscription),
            "request": dict(request),
            "delivered_event_ids": Counter(row["id"] for row in delivered),
            "coverage": coverage,
        }
    ledger = await conn.fetchrow(
        """
        SELECT coalesce(sum(delta), 0) AS total, count(*) AS lines
        FROM credit_ledger WHERE workspace_id = $1 AND reason = 'backfill_matches'
        """,
        backfill.workspace,
    )
    assert ledger is not None
    return {
        "contracts": per_contract,
        "credits": await conn.fetchval(
            "SELECT credits FROM workspaces WHERE id = $1", backfill.workspace
        ),
        "ledger_backfill_total": ledger["total"],
        "logs_stored": await conn.fetchval("SELECT count(*) FROM logs"),
        "matches_stored": await conn.fetchval("SELECT count(*) FROM matches"),
        # The audit trail accounts for every match once, killed windows included.
        "windows_new_matches": await conn.fetchval(
            "SELECT coalesce(sum(new_matches), 0) FROM windows"
        ),
        "windows_credits_charged": await conn.fetchval(
            "SELECT coalesce(sum(credits_charged), 0) FROM windows"
        ),
        "deliveries_events": await conn.fetchval(
            "SELECT coalesce(sum(event_count), 0) FROM webhook_deliveries"
        ),
        "deliveries_payload_events": await conn.fetchval(
            "SELECT coalesce(sum(jsonb_array_length(payload->'events')), 0) FROM webhook_deliveries"
        ),
    }


@pytest.fixture
def reference_database_url(server_url: str, template_database: str) -> Iterator[str]:
    """A second fresh, migrated database: the uninterrupted run happens there."""
    with throwaway_database(server_url, template=template_database) as url:
        yield url


# --------------------------------------------------------------------------- crash safety


KILLS = 5
CRASH_SEED = 20240611
CRASH_CONFIG: dict[str, Any] = {
    "max_block_range": 5,
    "window_budget_cu": 400,
    "max_calls_in_flight": 1,
}


async def test_kill_9_at_random_moments_then_a_restart_finishes_like_an_uninterrupted_run(
    fresh_anvil: AnvilNode,
    conn: asyncpg.Connection,
    reference_database_url: str,
    workers: Workers,
) -> None:
    on = fill_two_emitters(fresh_anvil.url, 1500, segments=3)  # 3000 logs over 600 blocks
    backfill = await queue_backfill(conn, on)
    configure_chain(workers, on.url, **CRASH_CONFIG)
    rng = random.Random(CRASH_SEED)

    async def matches_count() -> int:
        count: int = await conn.fetchval("SELECT count(*) FROM matches")
        return count

    # A first worker dies before it commits anything: starting up, or waiting to lead.
    doomed = workers.start()
    await asyncio.sleep(rng.uniform(0.2, 1.2))
    Workers.kill(doomed)

    interrupted_windows = 0
    for round_ in range(KILLS):
        before = await matches_count()
        worker = workers.start()

        async def progressed(baseline: int = before) -> bool:
            return await matches_count() > baseline

        async def mid_window(name: str = worker.name) -> bool:
            found: bool = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM windows"
                " WHERE worker = $1 AND finished_at IS NULL AND new_matches > 0)",
                name,
            )
            return found

        # Let this incarnation commit something (the previous one's lease must run out
        # first), then kill it: every other round in the middle of a window that has
        # committed part of its work, the others at any moment of a tick.
        await eventually(
            progressed, timeout=LEASE + 20, what="a restarted worker commits", workers=workers
        )
        if round_ % 2 == 0:
            await eventually(
                mid_window,
                timeout=5,
                what="a window in progress",
                workers=workers,
                poll=0.005,
            )
            await asyncio.sleep(rng.uniform(0, 0.02))
        else:
            await asyncio.sleep(rng.uniform(0, 2 * TICK))
        assert not await all_terminal(conn, backfill), "the backfill ended before the kills"
        Workers.kill(worker)
        interrupted_windows += await conn.fetchval(
            "SELECT count(*) FROM windows WHERE worker = $1 AND finished_at IS NULL", worker.name
        )
    # The kills did cut windows short (a window killed mid-way never records its end).
    assert interrupted_windows >= 1

    last = workers.start()
    await eventually(
        lambda: all_terminal(conn, backfill),
        timeout=60,
        what="the last worker finishes the backfill",
        workers=workers,
    )
    assert last.proc.poll() is None, last.output()
    # The worker that took over a window left open said so (and counted it: the
    # logfill_window_leases_taken_over_total counter).
    assert any("window_lease_taken_over" in w.output() for w in workers.started)
    # Every CU a window sent calls for is in its audit row, the killed ones' too
    # (written before each call went out, folded in when the next leader closed them).
    unaccounted = await conn.fetch(
        "SELECT w.id, w.cu_spent, s.cu_spent AS sent FROM windows w"
        " LEFT JOIN window_spend s ON s.window_id = w.id"
        " WHERE w.cu_spent IS DISTINCT FROM coalesce(s.cu_spent, 0)"
    )
    assert unaccounted == []
    crashed = await outcome(conn, backfill)

    # The same backfill on a database of its own, one worker, never interrupted.
    reference_conn = await connect(reference_database_url)
    try:
        reference_backfill = await queue_backfill(reference_conn, on)
        settings = window_settings(on.url, CHAIN_ID, lease_seconds=LEASE, **CRASH_CONFIG)
        async with window_pool(reference_database_url) as pool:
            await run_until_settled(
                pool, settings, list(reference_backfill.requests.values()), chain_id=CHAIN_ID
            )
        reference = await outcome(reference_conn, reference_backfill)
    finally:
        await reference_conn.close()

    assert crashed == reference

    # And both are what a plain eth_getLogs says, charged and enqueued exactly once.
    total = 0
    for address, seen in crashed["contracts"].items():
        expected = keys_of(chain.get_logs(on.url, on.low, on.high, address=address))
        assert len(expected) == 1500
        assert seen["matches"] == expected
        assert seen["delivered_event_ids"] == Counter(
            event_id(CHAIN_ID, block_hash, index) for block_hash, index in expected
        )
        request = seen["request"]
        assert request["status"] == "completed" and request["cursor"] is None
        assert request["new_matches"] == request["credits_charged"] == request["matches"]
        assert request["matches"] == len(expected) and request["duplicate_matches"] == 0
        assert request["blocks_scanned"] == on.high - on.low + 1
        total += len(expected)
    assert crashed["credits"] == CREDITS - total
    assert crashed["ledger_backfill_total"] == -total
    assert crashed["matches_stored"] == crashed["logs_stored"] == total
    assert crashed["deliveries_events"] == crashed["deliveries_payload_events"] == total
    assert crashed["windows_new_matches"] == crashed["windows_credits_charged"] == total


# --------------------------------------------------------------------------- two workers


@dataclass(frozen=True)
class WindowRow:
    id: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    new_matches: int
    duplicate_matches: int
    tick_started_at: datetime
    cu_spent: int
    budget_cu: int


async def windows_of_chain(conn: asyncpg.Connection) -> list[WindowRow]:
    rows = await conn.fetch(
        """
        SELECT id, worker, started_at, finished_at, new_matches, duplicate_matches,
               tick_started_at, cu_spent, budget_cu
        FROM windows WHERE chain_id = $1 ORDER BY started_at, id
        """,
        CHAIN_ID,
    )
    return [WindowRow(**dict(row)) for row in rows]


def assert_one_budget_per_tick(windows: list[WindowRow], budget_cu: int) -> None:
    """Windows never overlap; ticks start (about) a tick apart at least; and the windows
    started in one tick spend at most one window budget between them."""
    for before, after in itertools.pairwise(windows):
        assert before.finished_at is not None, f"window {before.id} never finished"
        assert after.started_at >= before.finished_at, (
            f"window {after.id} ({after.worker}) started before window {before.id} "
            f"({before.worker}) finished"
        )
    ticks: dict[datetime, list[WindowRow]] = {}
    for window in windows:
        ticks.setdefault(window.tick_started_at, []).append(window)
    for before_tick, after_tick in itertools.pairwise(sorted(ticks)):
        gap = (after_tick - before_tick).total_seconds()
        assert gap >= 0.8 * TICK, f"ticks started {gap:.3f} s apart, less than a tick ({TICK} s)"
    for tick_start, in_tick in ticks.items():
        spent = sum(w.cu_spent for w in in_tick)
        assert spent <= budget_cu, f"the tick of {tick_start} spent {spent} CU of {budget_cu}"


async def test_two_workers_on_one_database_run_each_tick_window_in_exactly_one_process(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, workers: Workers
) -> None:
    on = fill_two_emitters(fresh_anvil.url, 500, segments=1)  # 1000 logs over 200 blocks
    backfill = await queue_backfill(conn, on)
    # Two eth_getLogs calls of 5 blocks a window: the backfill outlasts the test.
    configure_chain(workers, on.url, max_block_range=5, window_budget_cu=130)
    first, second = workers.start(), workers.start()

    await asyncio.sleep(6)
    assert first.proc.poll() is None, first.output()
    assert second.proc.poll() is None, second.output()
    together = await windows_of_chain(conn)
    # Counted from the first window, not from the start of two cold processes (their
    # start-up is not what this test is about and took up to 2 s of the 6 on 2 cores).
    running = (await conn.fetchval("SELECT now()") - together[0].started_at).total_seconds()
    assert running >= 3, f"the first window came only after {6 - running:.1f} s"
    assert len(together) >= running / TICK * 0.6, f"only {len(together)} windows in {running:.1f} s"
    assert {w.worker for w in together} <= {first.name, second.name}
    assert_one_budget_per_tick([w for w in together if w.finished_at is not None], 130)
    assert not await all_terminal(conn, backfill)

    # Kill whichever leads now: the other one takes the chain over once the lease runs out.
    leader = await conn.fetchval("SELECT leader FROM chain_state WHERE chain_id = $1", CHAIN_ID)
    dead, survivor = (first, second) if leader == first.name else (second, first)
    assert leader == dead.name
    Workers.kill(dead)
    killed_at = await conn.fetchval("SELECT now()")

    async def survivor_leads() -> bool:
        started = await conn.fetchval(
            "SELECT min(started_at) FROM windows WHERE worker = $1 AND started_at > $2",
            survivor.name,
            killed_at,
        )
        return started is not None

    await eventually(
        survivor_leads,
        timeout=LEASE + TICK + 5,
        what="the other worker takes over",
        workers=workers,
    )
    took_over = await conn.fetchval(
        "SELECT min(started_at) FROM windows WHERE worker = $1 AND started_at > $2",
        survivor.name,
        killed_at,
    )
    delay = (took_over - killed_at).total_seconds()
    assert delay <= LEASE + TICK + 0.5, f"took {delay:.2f} s to take over"
    await asyncio.sleep(2)

    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot
        windows = await windows_of_chain(conn)
        stored = await conn.fetchval("SELECT count(*) FROM matches")
    assert {w.worker for w in windows} == {first.name, second.name}  # both could lead
    dead_open = [w for w in windows if w.worker == dead.name and w.finished_at is None]
    assert len(dead_open) <= 1  # the window the kill interrupted, if any
    after_kill = [w for w in windows if w.started_at > killed_at]
    assert after_kill and {w.worker for w in after_kill} == {survivor.name}
    assert all(w.finished_at is not None for w in after_kill[:-1])
    assert_one_budget_per_tick([w for w in after_kill if w.finished_at is not None], 130)

    # No window ever scanned what another one had stored: nothing was found twice.
    assert sum(w.duplicate_matches for w in windows) == 0
    assert sum(w.new_matches for w in windows) == stored > 0


async def test_one_worker_runs_a_window_on_every_tick_while_work_is_runnable(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, workers: Workers
) -> None:
    """A backfill that needs many windows gets one on each tick, not one every other tick
    (the budget per window, not the scheduler, is what paces it), and the worker does
    not warn about ticks it had to skip."""
    on = fill_two_emitters(fresh_anvil.url, 500, segments=1)  # 1000 logs over 200 blocks
    backfill = await queue_backfill(conn, on)
    configure_chain(workers, on.url, max_block_range=5, window_budget_cu=130)
    only = workers.start()

    async def first_window() -> bool:
        return bool(await windows_of_chain(conn))

    await eventually(first_window, timeout=30, what="a first window", workers=workers)
    await asyncio.sleep(8 * TICK)
    windows = await windows_of_chain(conn)
    running = (await conn.fetchval("SELECT now()") - windows[0].started_at).total_seconds()
    ticks = running / TICK
    assert len(windows) >= 0.85 * ticks, f"{len(windows)} windows in {ticks:.1f} ticks"
    assert_one_budget_per_tick([w for w in windows if w.finished_at is not None], 130)
    assert not await all_terminal(conn, backfill)
    assert "skipped" not in only.output()


# --------------------------------------------------------------------------- wake-ups


async def listening(worker: Any, workers: Workers, conn: asyncpg.Connection) -> None:
    """The worker has had its first window and LISTENs for runnable requests."""

    async def ready() -> bool:
        return "listening_for_requests" in worker.output() and bool(await windows_of_chain(conn))

    await eventually(ready, timeout=30, what="the worker listens", workers=workers)


async def test_a_request_queued_while_the_worker_idles_starts_at_once_not_at_the_next_tick(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, workers: Workers
) -> None:
    """With a minute between ticks, a request queued (and one topped up after running out
    of credits) starts within seconds: the database wakes the worker, and the window it
    runs follows the tick's first one on what that tick's budget has left."""
    on = fill_two_emitters(fresh_anvil.url, 100, segments=1)  # 200 logs over 40 blocks
    # No reorg checks: the CU figures below are the budget's (tests/chain/test_reorg.py
    # prices the checks).
    configure_chain(workers, on.url, tick_seconds=60, reorg_check_blocks=0)
    only = workers.start()
    await listening(only, workers, conn)

    backfill = await queue_backfill(conn, on)
    await eventually(
        lambda: all_terminal(conn, backfill), timeout=15, what="the backfill", workers=workers
    )
    waited = await conn.fetchval(
        "SELECT max(started_at - created_at) FROM backfill_requests WHERE id = ANY($1::uuid[])",
        list(backfill.requests.values()),
    )
    assert waited.total_seconds() < 5, f"started {waited} after it was queued"
    contracts = (await outcome(conn, backfill))["contracts"].values()
    assert [c["request"]["matches"] for c in contracts] == [100, 100]

    # Credits run out half-way; a top-up lets the request go on at once.
    workspace = await make_workspace(conn, credits=50)
    subscription = await create_subscription(
        conn, workspace, chain_id=CHAIN_ID, addresses=[on.contracts[0]], webhook_url=WEBHOOK
    )
    short = await create_backfill(conn, subscription, on.low, on.high)

    async def status_is(wanted: str) -> bool:
        status = await conn.fetchval("SELECT status FROM backfill_requests WHERE id = $1", short)
        return bool(status == wanted)

    await eventually(
        lambda: status_is("paused_credits"),
        timeout=15,
        what="the pause for credits",
        workers=workers,
    )
    await conn.execute("UPDATE workspaces SET credits = credits + 100 WHERE id = $1", workspace)

    await eventually(
        lambda: status_is("completed"), timeout=10, what="the topped-up request", workers=workers
    )
    windows = await windows_of_chain(conn)
    assert len({w.tick_started_at for w in windows}) == 1, "all in the first tick"
    assert_one_budget_per_tick(windows, 12_000)
    # One head read (the tick's first window); each follower one eth_getLogs call near
    # the head, verified by reading its last block (60 + 20 CU).
    assert sum(w.cu_spent for w in windows) == 10 + (60 + 20) * len(
        [w for w in windows if w.cu_spent > 10]
    )


async def test_two_workers_woken_by_a_stream_of_requests_share_each_tick_budget(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, workers: Workers
) -> None:
    """Both workers are woken by every request queued; one runs each window, windows do
    not overlap, and a tick's windows together stay within one budget."""
    on = fill_two_emitters(fresh_anvil.url, 250, segments=1)  # 500 logs over 100 blocks
    budget = 490  # the head and eight 5-block calls a tick
    configure_chain(workers, on.url, max_block_range=5, window_budget_cu=budget)
    first, second = workers.start(), workers.start()
    await listening(first, workers, conn)
    await listening(second, workers, conn)

    workspace = await make_workspace(conn, credits=CREDITS)
    requests = []
    for k in range(12):
        address = on.contracts[k % 2]
        subscription = await create_subscription(
            conn, workspace, chain_id=CHAIN_ID, addresses=[address], webhook_url=WEBHOOK
        )
        low = on.low + 5 * k
        requests.append(await create_backfill(conn, subscription, low, low + 14))
        await asyncio.sleep(TICK / 3)

    async def done() -> bool:
        statuses = await conn.fetch(
            "SELECT status FROM backfill_requests WHERE id = ANY($1::uuid[])", requests
        )
        return all(row["status"] in TERMINAL for row in statuses)

    await eventually(done, timeout=30, what="every request", workers=workers)
    windows = [w for w in await windows_of_chain(conn) if w.finished_at is not None]
    assert_one_budget_per_tick(windows, budget)
    ticks = Counter(w.tick_started_at for w in windows)
    assert max(ticks.values()) >= 2, "no window ever followed another within its tick"
    assert sum(w.duplicate_matches for w in windows) == 0


# --------------------------------------------------------------------------- follow mode


async def test_kill_9_around_the_handoff_to_following_loses_and_repeats_nothing(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, workers: Workers
) -> None:
    """Follow requests on a chain that keeps mining; the worker is killed at random
    moments while they catch up and right after they first reach `following`. In the
    end what is stored, charged and enqueued is what eth_getLogs holds up to the head,
    once each."""
    on = fill_two_emitters(fresh_anvil.url, 300, segments=1)  # 600 logs over 120 blocks
    backfill = await queue_backfill(conn, on, follow=True)
    requests = backfill.requests
    configure_chain(workers, on.url, **CRASH_CONFIG)
    rng = random.Random(CRASH_SEED + 1)

    stop = threading.Event()

    def keep_mining() -> None:
        n = 0
        while not stop.is_set():
            chain.emit_transfer(on.url, on.contracts[n % 2], "0x" + "11" * 20, "0x" + "22" * 20, n)
            n += 1
            stop.wait(0.1)

    miner = threading.Thread(target=keep_mining, daemon=True)
    miner.start()

    async def any_following() -> bool:
        found: bool = await conn.fetchval(
            "SELECT bool_or(status = 'following') FROM backfill_requests WHERE id = ANY($1)",
            list(requests.values()),
        )
        return bool(found)

    async def matches_count() -> int:
        count: int = await conn.fetchval("SELECT count(*) FROM matches")
        return count

    try:
        for round_ in range(4):
            before = await matches_count()
            worker = workers.start()

            async def progressed(baseline: int = before) -> bool:
                return await matches_count() > baseline

            # Each incarnation commits something (the previous lease must run out first;
            # the chain keeps bringing new matches), then dies at a random moment; one of
            # them right after a request first reached `following`.
            await eventually(
                progressed, timeout=LEASE + 20, what="a worker commits", workers=workers
            )
            if round_ == 2:
                await eventually(
                    any_following, timeout=LEASE + 30, what="catching up", workers=workers
                )
            await asyncio.sleep(rng.uniform(0, 2 * TICK))
            Workers.kill(worker)
        last = workers.start()
        await asyncio.sleep(1)
    finally:
        stop.set()
        await asyncio.to_thread(miner.join)
    head = chain.block_number(on.url)

    async def caught_up() -> bool:
        rows = await conn.fetch(
            "SELECT status, cursor FROM backfill_requests WHERE id = ANY($1)",
            list(requests.values()),
        )
        return all(r["status"] == "following" and r["cursor"] == head + 1 for r in rows)

    await eventually(caught_up, timeout=LEASE + 30, what="caught up with the head", workers=workers)
    assert last.proc.poll() is None, last.output()
    seen = await outcome(conn, backfill)
    total = 0
    for address, got in seen["contracts"].items():
        expected = keys_of(chain.get_logs(on.url, on.low, head, address=address))
        assert len(expected) > 300  # the history and what came while following
        assert got["matches"] == expected
        assert got["delivered_event_ids"] == Counter(
            event_id(CHAIN_ID, block_hash, index) for block_hash, index in expected
        )
        request = got["request"]
        assert request["new_matches"] == request["credits_charged"] == len(expected)
        assert request["duplicate_matches"] == 0
        assert request["blocks_scanned"] == head - on.low + 1
        total += len(expected)
    assert seen["credits"] == CREDITS - total
    assert seen["ledger_backfill_total"] == -total
    assert seen["deliveries_events"] == seen["deliveries_payload_events"] == total
