"""Migration 0012 (logs by place, narrow matches) upgrades a database in place."""

from __future__ import annotations

from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect
from indexer.events import list_events
from indexer.pagination import encode_cursor
from tests.support.factories import make_subscription, make_workspace, random_log

BEFORE = 11  # the last migration with surrogate ids on logs and matches


async def test_stored_events_survive_the_upgrade_in_order_and_once(
    empty_database_url: str,
) -> None:
    conn = await connect(empty_database_url)
    try:
        known = load_migrations()
        await migrate(conn, [m for m in known if m.version <= BEFORE])
        workspace_id = await make_workspace(conn)
        subscription_id = await make_subscription(conn, workspace_id)
        for block in (30, 10, 20):
            log = random_log(block_number=block, data=block.to_bytes(32, "big"))
            log_id = await conn.fetchval(
                "INSERT INTO logs (chain_id, block_number, block_hash, log_index,"
                " transaction_hash, transaction_index, address, topics, data)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                *log.values(),
            )
            await conn.execute(
                "INSERT INTO matches (subscription_id, log_id, block_number, log_index)"
                " VALUES ($1, $2, $3, 0)",
                subscription_id,
                log_id,
                block,
            )
        await migrate(conn, known)
        stored = await conn.fetch(
            "SELECT block_number FROM matches WHERE subscription_id = $1 ORDER BY 1",
            subscription_id,
        )
        assert [r["block_number"] for r in stored] == [10, 20, 30]
        # the new keys hold: the same place again is refused, not stored twice
        again = await conn.fetchval(
            "INSERT INTO matches (subscription_id, block_number, log_index) VALUES ($1, 10, 0)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            subscription_id,
        )
        assert again is None
        # pages read back in chain order, and a cursor issued before the upgrade (it
        # carried the match id) still reads on from where it was
        page, after = await list_events(conn, workspace_id, subscription_id, limit=2, after=None)
        assert [e["block_number"] for e in page] == [10, 20]
        assert after is not None
        rest, _ = await list_events(conn, workspace_id, subscription_id, limit=2, after=after)
        assert [e["block_number"] for e in rest] == [30]
        old = encode_cursor("events", 10, 0, 1)
        rest, _ = await list_events(conn, workspace_id, subscription_id, limit=5, after=old)
        assert [e["block_number"] for e in rest] == [20, 30]
        assert all(e["data"].endswith(f"{e['block_number']:02x}") for e in page + rest)
    finally:
        await conn.close()
