"""`logfill admin chain show` and `logfill admin chain resume` as an operator runs them
on a chain whose windows a deep reorg stopped."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.factories import insert_log, make_workspace, random_log
from tests.support.processes import answer, logfill, refusal
from tests.support.window import create_backfill, create_subscription

CHAIN = 1
OTHER_CHAIN = 10
HALTED_FOR = "reorg at block 180 is deeper than max_reorg_depth (256)"
RESCAN_FROM = 150
# (block, log index) of the stored matches: below the rescan block and from it on.
KEPT = [(120, 0), (140, 0), (149, 3)]
REMOVED = [(150, 0), (170, 0), (170, 1)]


@dataclass(frozen=True)
class Stored:
    """A workspace with 100 credits whose webhook subscription on CHAIN has a completed
    request over blocks 100-200: its matches KEPT and REMOVED, the blocks covered."""

    workspace_id: uuid.UUID
    subscription_id: uuid.UUID
    request_id: uuid.UUID
    block_hashes: dict[tuple[int, int], bytes]


async def set_chain_state(conn: asyncpg.Connection, chain_id: int, *, halted: bool) -> None:
    await conn.execute(
        """
        INSERT INTO chain_state (chain_id, head, safe_head, checked_block, halted_reason,
                                 halted_at)
        VALUES ($1, 260, 248, 190, $2, CASE WHEN $2::text IS NULL THEN NULL ELSE now() END)
        """,
        chain_id,
        HALTED_FOR if halted else None,
    )


async def store_match(
    conn: asyncpg.Connection,
    subscription_id: uuid.UUID,
    request_id: uuid.UUID | None,
    chain_id: int,
    place: tuple[int, int],
) -> bytes:
    """A log at `place` and the subscription's match of it; the log's block hash."""
    log = random_log(chain_id=chain_id, block_number=place[0], log_index=place[1])
    assert await insert_log(conn, log)
    await conn.execute(
        "INSERT INTO matches (subscription_id, block_number, log_index, backfill_request_id)"
        " VALUES ($1, $2, $3, $4)",
        subscription_id,
        *place,
        request_id,
    )
    block_hash: bytes = log["block_hash"]
    return block_hash


async def store_chain(conn: asyncpg.Connection, *, halted: bool) -> Stored:
    await set_chain_state(conn, CHAIN, halted=halted)
    workspace_id = await make_workspace(conn, credits=100)
    subscription_id = await create_subscription(
        conn, workspace_id, chain_id=CHAIN, webhook_url="https://hooks.example.com/h"
    )
    request_id = await create_backfill(conn, subscription_id, 100, 200)
    await conn.execute(
        """
        UPDATE backfill_requests
        SET status = 'completed', cursor = NULL, remaining = '{}', finished_at = now(),
            blocks_scanned = 101, matches = 6, new_matches = 6, credits_charged = 6
        WHERE id = $1
        """,
        request_id,
    )
    await conn.execute(
        "INSERT INTO subscription_coverage (subscription_id, covered) VALUES ($1, '{[100,200]}')",
        subscription_id,
    )
    hashes = {
        place: await store_match(conn, subscription_id, request_id, CHAIN, place)
        for place in KEPT + REMOVED
    }
    # The same workspace on another chain: a match at a block the rescan names.
    elsewhere = await create_subscription(conn, workspace_id, chain_id=OTHER_CHAIN)
    await store_match(conn, elsewhere, None, OTHER_CHAIN, (170, 0))
    return Stored(workspace_id, subscription_id, request_id, hashes)


async def matches_of(conn: asyncpg.Connection, subscription_id: uuid.UUID) -> list[tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT block_number, log_index FROM matches WHERE subscription_id = $1"
        " ORDER BY block_number, log_index",
        subscription_id,
    )
    return [(row["block_number"], row["log_index"]) for row in rows]


async def snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    """Everything a resume may change, as a customer or an operator would see it."""
    queries = {
        "chain_state": "SELECT chain_id, halted_reason, halted_at, checked_block"
        " FROM chain_state ORDER BY chain_id",
        "matches": "SELECT subscription_id, block_number, log_index FROM matches ORDER BY 1, 2, 3",
        "logs": "SELECT chain_id, block_number, log_index FROM logs ORDER BY 1, 2, 3",
        "credits": "SELECT id, credits FROM workspaces ORDER BY id",
        "ledger": "SELECT workspace_id, delta, reason FROM credit_ledger ORDER BY id",
        "requests": "SELECT id, status, cursor, remaining::text, blocks_scanned,"
        " matches_removed, finished_at FROM backfill_requests ORDER BY id",
        "coverage": "SELECT subscription_id, covered::text FROM subscription_coverage ORDER BY 1",
        "deliveries": "SELECT id FROM webhook_deliveries ORDER BY id",
        "removed": "SELECT block_number, log_index FROM removed_matches ORDER BY 1, 2",
        "reorgs": "SELECT id FROM reorgs ORDER BY id",
    }
    return {name: [tuple(row) for row in await conn.fetch(sql)] for name, sql in queries.items()}


async def test_show_of_a_chain_no_window_has_run_on_says_so(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await set_chain_state(conn, CHAIN, halted=True)  # another chain's state is not this one's
    result = logfill(cli_env, tmp_path, "admin", "chain", "show", "999")
    assert refusal(result) == "logfill: chain 999: no window has run on it"


async def test_show_of_a_halted_chain_says_why_its_windows_are_stopped(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await set_chain_state(conn, CHAIN, halted=True)
    shown = answer(cli_env, tmp_path, "admin", "chain", "show", str(CHAIN))
    assert shown["chain_id"] == CHAIN
    assert (shown["head"], shown["safe_head"], shown["checked_block"]) == (260, 248, 190)
    assert shown["halted_reason"] == HALTED_FOR and shown["halted_at"] is not None
    assert (shown["reorgs"], shown["last_reorg"]) == (0, None)


async def test_rescan_of_a_chain_that_runs_is_refused_and_changes_nothing(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await store_chain(conn, halted=False)
    before = await snapshot(conn)
    result = logfill(cli_env, tmp_path, "admin", "chain", "resume", str(CHAIN),
                     "--rescan-from", "5")  # fmt: skip
    assert refusal(result) == (
        f"logfill: chain {CHAIN} is not stopped; --rescan-from repairs a stopped chain only"
    )
    assert await snapshot(conn) == before


async def test_a_negative_rescan_block_is_refused_and_changes_nothing(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await store_chain(conn, halted=True)
    before = await snapshot(conn)
    result = logfill(cli_env, tmp_path, "admin", "chain", "resume", str(CHAIN),
                     "--rescan-from", "-1")  # fmt: skip
    assert refusal(result) == "logfill: --rescan-from must be a block number >= 0, got -1"
    assert await snapshot(conn) == before


async def test_resume_without_a_rescan_restarts_the_windows_and_removes_nothing(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    stored = await store_chain(conn, halted=True)
    before = await snapshot(conn)
    resumed = answer(cli_env, tmp_path, "admin", "chain", "resume", str(CHAIN))
    assert resumed == {
        "chain_id": CHAIN,
        "resumed": True,
        "was_halted_for": HALTED_FOR,
        "rescan_from": None,
        "matches_removed": 0,
        "requests_rewound": 0,
    }
    state = await conn.fetchrow("SELECT * FROM chain_state WHERE chain_id = $1", CHAIN)
    assert state is not None
    assert (state["halted_reason"], state["halted_at"]) == (None, None)
    after = await snapshot(conn)
    assert {**after, "chain_state": None} == {**before, "chain_state": None}
    assert await matches_of(conn, stored.subscription_id) == KEPT + REMOVED

    shown = answer(cli_env, tmp_path, "admin", "chain", "show", str(CHAIN))
    assert (shown["halted_reason"], shown["halted_at"], shown["reorgs"]) == (None, None, 0)


async def test_resume_with_a_rescan_removes_refunds_and_announces_the_matches_from_there_on(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    stored = await store_chain(conn, halted=True)
    resumed = answer(cli_env, tmp_path, "admin", "chain", "resume", str(CHAIN),
                     "--rescan-from", str(RESCAN_FROM))  # fmt: skip
    assert resumed == {
        "chain_id": CHAIN,
        "resumed": True,
        "was_halted_for": HALTED_FOR,
        "rescan_from": RESCAN_FROM,
        "matches_removed": len(REMOVED),
        "requests_rewound": 1,
    }
    assert await conn.fetchval(
        "SELECT halted_reason FROM chain_state WHERE chain_id = $1", CHAIN
    ) is None  # fmt: skip

    # The matches from the rescan block on left the listing and are kept for audit.
    assert await matches_of(conn, stored.subscription_id) == KEPT
    removed = await conn.fetch(
        "SELECT block_number, log_index, block_hash, backfill_request_id FROM removed_matches"
        " WHERE subscription_id = $1 ORDER BY block_number, log_index",
        stored.subscription_id,
    )
    assert [tuple(row) for row in removed] == [
        (*place, stored.block_hashes[place], stored.request_id) for place in REMOVED
    ]
    other = await conn.fetch(
        "SELECT m.block_number FROM matches m JOIN subscriptions s ON s.id = m.subscription_id"
        " WHERE s.chain_id = $1",
        OTHER_CHAIN,
    )
    assert [row["block_number"] for row in other] == [170]

    # One credit back per removed match, on one ledger line.
    credits = await conn.fetchval(
        "SELECT credits FROM workspaces WHERE id = $1", stored.workspace_id
    )
    assert credits == 100 + len(REMOVED)
    ledger = await conn.fetch(
        "SELECT delta, balance_after, backfill_request_id FROM credit_ledger"
        " WHERE workspace_id = $1 AND reason = 'reorg_refund'",
        stored.workspace_id,
    )
    assert [tuple(row) for row in ledger] == [(len(REMOVED), credits, stored.request_id)]

    # The subscription's receiver is told which events are gone.
    [delivery] = await conn.fetch(
        "SELECT status, event_count, payload FROM webhook_deliveries WHERE subscription_id = $1",
        stored.subscription_id,
    )
    payload = delivery["payload"]
    assert (delivery["status"], delivery["event_count"]) == ("pending", len(REMOVED))
    assert payload["type"] == "backfill.matches.removed"
    assert (payload["chain_id"], payload["backfill_id"]) == (CHAIN, str(stored.request_id))
    assert [(e["block_number"], e["log_index"], e["block_hash"]) for e in payload["events"]] == [
        (*place, "0x" + stored.block_hashes[place].hex()) for place in REMOVED
    ]

    # The request scans the blocks from the rescan block on again.
    request = await conn.fetchrow(
        "SELECT status, cursor, remaining::text, matches_removed, finished_at"
        " FROM backfill_requests WHERE id = $1",
        stored.request_id,
    )
    assert request is not None
    assert tuple(request) == ("processing", RESCAN_FROM, "{[150,201)}", len(REMOVED), None)
    covered = await conn.fetchval(
        "SELECT covered::text FROM subscription_coverage WHERE subscription_id = $1",
        stored.subscription_id,
    )
    assert covered == "{[100,150)}"

    # The operator sees the repair on the chain.
    shown = answer(cli_env, tmp_path, "admin", "chain", "show", str(CHAIN))
    assert (shown["halted_reason"], shown["reorgs"]) == (None, 1)
    last = shown["last_reorg"]
    assert (last["source"], last["fork_block"], last["window_id"]) == ("operator", 150, None)
    assert (last["matches_removed"], last["requests_rewound"]) == (len(REMOVED), 1)
