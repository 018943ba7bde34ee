"""Where a window commit's PostgreSQL time goes: the three heavy statements, alone.

Stages 20 chunks of 10,000 fresh logs (one subscription, one match per log) the
way the window does (indexer.store.staging COPY text into `window_matches`), then
times the COPY, the logs insert and the matches insert separately, summed over
the chunks. A fresh database on LOGFILL_DATABASE_URL's server (default the local
one) is created and dropped.

Run: .venv/bin/python -m bench.commit_parts
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid

import asyncpg

from indexer.chain.logs import Log
from indexer.db import queries
from indexer.db.admin import create_database, drop_database
from indexer.db.migrate import load_migrations, migrate
from indexer.store.commit import create_staging_tables
from indexer.store.staging import COLUMNS, stage_payload

CHUNKS, PER_CHUNK = 20, 10_000


def fresh_logs(chunk: int) -> list[Log]:
    return [
        Log(
            block_number=chunk * 20 + i // 500,
            block_hash="0x" + os.urandom(32).hex(),
            log_index=i % 500,
            transaction_hash="0x" + os.urandom(32).hex(),
            transaction_index=i % 500,
            address="0x" + "11" * 20,
            topics=("0x" + "ff" * 32, "0x" + os.urandom(32).hex()),
            data="0x" + os.urandom(32).hex(),
        )
        for i in range(PER_CHUNK)
    ]


async def measure(conn: asyncpg.Connection) -> dict[str, float]:
    workspace = await conn.fetchval(
        "INSERT INTO workspaces (name, plan, credits) VALUES ('bench', 'pro', 1e9) RETURNING id"
    )
    subscription = await conn.fetchval(
        "INSERT INTO subscriptions (workspace_id, chain_id) VALUES ($1, 1) RETURNING id", workspace
    )
    await create_staging_tables(conn)
    seconds = {"copy": 0.0, "insert logs": 0.0, "insert matches": 0.0}
    for chunk in range(CHUNKS):
        payload = stage_payload((subscription, None, e) for e in fresh_logs(chunk))
        async with conn.transaction():
            steps = {
                "copy": conn.copy_to_table(
                    "window_matches", source=io.BytesIO(payload), columns=COLUMNS, format="text"
                ),
                "insert logs": queries.execute(conn, "insert_staged_logs", chain_id=1),
                "insert matches": queries.fetch(
                    conn, "insert_staged_matches", detailed_subscription_ids=[]
                ),
            }
            for name, step in steps.items():
                started = time.perf_counter()
                await step
                seconds[name] += time.perf_counter() - started
    return seconds


async def main() -> None:
    server = os.environ.get("LOGFILL_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"logfill_bench_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(server, name)
    try:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn, load_migrations())
            seconds = await measure(conn)
        finally:
            await conn.close()
    finally:
        await drop_database(server, name)
    rows = CHUNKS * PER_CHUNK
    for step, spent in seconds.items():
        print(f"{step:15} {spent:6.2f} s  {rows / spent:9,.0f} rows/s")
    total = sum(seconds.values())
    print(f"{'all three':15} {total:6.2f} s  {rows / total:9,.0f} matches/s (the commit ceiling)")


if __name__ == "__main__":
    asyncio.run(main())
