"""The invariants PostgreSQL holds on its own refuse bad rows, whatever code writes them."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.factories import (
    insert_log,
    insert_match,
    make_backfill,
    make_subscription,
    make_workspace,
    random_log,
)


async def test_credits_can_never_go_negative(conn: asyncpg.Connection) -> None:
    workspace_id = await make_workspace(conn, credits=3)
    with pytest.raises(asyncpg.CheckViolationError, match="credits"):
        await conn.execute(
            "UPDATE workspaces SET credits = credits - 4 WHERE id = $1", workspace_id
        )
    assert await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace_id) == 3


async def test_a_log_is_stored_once_per_place_on_its_chain(conn: asyncpg.Connection) -> None:
    log = random_log()
    assert await insert_log(conn, log)
    assert not await insert_log(conn, log)  # ON CONFLICT DO NOTHING reports nothing new
    assert await insert_log(conn, {**log, "chain_id": 2})  # another chain
    assert await insert_log(conn, {**log, "log_index": 1})  # another log
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,"
            " transaction_index, address, topics, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
            " $9)",
            *log.values(),
        )


async def test_one_match_per_subscription_and_log(conn: asyncpg.Connection) -> None:
    subscription_id = await make_subscription(conn, await make_workspace(conn))
    log = random_log()
    assert await insert_match(conn, subscription_id, log)
    assert not await insert_match(conn, subscription_id, log)
    assert await conn.fetchval("SELECT count(*) FROM matches") == 1


async def test_deleting_a_subscription_deletes_its_matches_and_no_others(
    conn: asyncpg.Connection,
) -> None:
    workspace_id = await make_workspace(conn)
    gone = await make_subscription(conn, workspace_id)
    kept = await make_subscription(conn, workspace_id)
    for subscription_id in (gone, kept):
        for block in (10, 11):
            await insert_match(conn, subscription_id, random_log(block_number=block))
    await conn.execute("DELETE FROM subscriptions WHERE id = $1", gone)
    rows = await conn.fetch("SELECT subscription_id FROM matches")
    assert [r["subscription_id"] for r in rows] == [kept, kept]


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ({"status": "running"}, "status"),
        ({"from_block": 300, "to_block": 200, "cursor": 250}, "check"),
        ({"from_block": -1, "cursor": 0}, "from_block"),
        ({"cursor": 500}, "check"),
        ({"block_order": "random"}, "block_order"),
        # A terminal request has no cursor; a live one always has one.
        ({"status": "completed", "finished_at": "now"}, "check"),
        ({"status": "queued", "cursor": None}, "check"),
    ],
)
async def test_backfill_requests_refuse_impossible_states(
    conn: asyncpg.Connection, columns: dict[str, object], constraint: str
) -> None:
    subscription_id = await make_subscription(conn, await make_workspace(conn))
    if columns.get("finished_at") == "now":
        columns = {**columns, "finished_at": await conn.fetchval("SELECT now()")}
    with pytest.raises(asyncpg.CheckViolationError, match=constraint):
        await make_backfill(conn, subscription_id, **columns)
    assert await conn.fetchval("SELECT count(*) FROM backfill_requests") == 0


async def test_terminal_request_without_cursor_is_accepted(conn: asyncpg.Connection) -> None:
    subscription_id = await make_subscription(conn, await make_workspace(conn))
    finished_at = await conn.fetchval("SELECT now()")
    await make_backfill(
        conn, subscription_id, status="completed", cursor=None, finished_at=finished_at
    )
    assert await conn.fetchval("SELECT status FROM backfill_requests") == "completed"


async def test_a_request_needs_an_existing_subscription(conn: asyncpg.Connection) -> None:
    workspace_id = await make_workspace(conn)
    subscription_id = await make_subscription(conn, workspace_id)
    await conn.execute("DELETE FROM subscriptions WHERE id = $1", subscription_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO backfill_requests (workspace_id, subscription_id, chain_id, from_block,"
            " to_block, cursor) VALUES ($1, $2, 1, 1, 2, 1)",
            workspace_id,
            subscription_id,
        )


async def test_the_credit_ledger_is_append_only(conn: asyncpg.Connection) -> None:
    workspace_id = await make_workspace(conn)
    await conn.execute(
        "INSERT INTO credit_ledger (workspace_id, delta, balance_after, reason)"
        " VALUES ($1, 100, 100, 'initial')",
        workspace_id,
    )
    for statement in (
        "UPDATE credit_ledger SET delta = 1",
        "DELETE FROM credit_ledger",
        "TRUNCATE credit_ledger",
    ):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await conn.execute(statement)
    assert await conn.fetchval("SELECT delta FROM credit_ledger") == 100


async def test_a_window_cannot_record_more_cu_than_its_budget(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO windows (chain_id, worker, budget_cu, cu_spent) VALUES (1, 'w', 100, 101)"
        )


async def test_deleting_a_subscription_keeps_the_ledger(conn: asyncpg.Connection) -> None:
    """Ledger rows name requests as history, so deleting them never rewrites the ledger."""
    workspace_id = await make_workspace(conn)
    subscription_id = await make_subscription(conn, workspace_id)
    backfill_id = await make_backfill(conn, subscription_id)
    await conn.execute(
        "INSERT INTO credit_ledger (workspace_id, delta, balance_after, reason,"
        " backfill_request_id) VALUES ($1, -1, 99, 'backfill_matches', $2)",
        workspace_id,
        backfill_id,
    )
    await conn.execute("DELETE FROM subscriptions WHERE id = $1", subscription_id)
    assert await conn.fetchval("SELECT count(*) FROM backfill_requests") == 0
    assert await conn.fetchval("SELECT backfill_request_id FROM credit_ledger") == backfill_id
