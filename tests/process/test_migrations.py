"""Migrations: applied once, in order, under a lock; a mismatched database is refused."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import asyncpg
import orjson
import pytest

from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect
from indexer.errors import MigrationError
from tests.support.processes import LOGFILL_BIN

KNOWN = load_migrations()
EXPECTED_TABLES = {
    "plans",
    "workspaces",
    "api_keys",
    "subscriptions",
    "subscription_coverage",
    "backfill_requests",
    "idempotency_keys",
    "logs",
    "matches",
    "credit_ledger",
    "webhook_deliveries",
    "chain_state",
    "windows",
    "schema_migrations",
    "dashboard_sessions",
    "backfill_request_windows",
    "log_fragments",
    "chain_blocks",
    "reorgs",
    "removed_matches",
    "api_processes",
    "window_spend",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrate_creates_the_schema_on_an_empty_database(empty_database_url: str) -> None:
    conn = await connect(empty_database_url)
    try:
        applied = await migrate(conn, KNOWN)
        assert [m.label for m in applied] == [m.label for m in KNOWN]
        assert await _tables(conn) == EXPECTED_TABLES
        recorded = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        assert {(r["version"], r["checksum"]) for r in recorded} == {
            (m.version, m.checksum) for m in KNOWN
        }
    finally:
        await conn.close()


async def test_plans_are_seeded(conn: asyncpg.Connection) -> None:
    plans = {
        r["name"]: r
        for r in await conn.fetch("SELECT name, backfill_enabled, max_backfill_blocks FROM plans")
    }
    assert set(plans) == {"free", "pro", "enterprise"}
    assert plans["free"]["backfill_enabled"] is False
    for paid in ("pro", "enterprise"):
        assert plans[paid]["backfill_enabled"] is True
        assert plans[paid]["max_backfill_blocks"] > 0
    assert plans["enterprise"]["max_backfill_blocks"] > plans["pro"]["max_backfill_blocks"]


async def test_rerun_applies_nothing(conn: asyncpg.Connection) -> None:
    before = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    assert await migrate(conn, KNOWN) == []
    assert await conn.fetch("SELECT version, applied_at FROM schema_migrations") == before


async def test_a_changed_migration_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    with pytest.raises(MigrationError, match="0001_schema changed after it was applied"):
        await migrate(conn, KNOWN)


async def test_an_unknown_migration_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
    )
    with pytest.raises(MigrationError, match="9999_future that this logfill does not know"):
        await migrate(conn, KNOWN)


async def test_a_failing_migration_leaves_nothing_behind(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE bad (id int); SELECT no_such_column;")
    conn = await connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(conn, load_migrations(tmp_path))
        assert await _tables(conn) == set()
    finally:
        await conn.close()


def test_badly_named_migration_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_schema.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=re.escape("0001_name.sql: 1_schema.sql")):
        load_migrations(tmp_path)


def test_duplicate_versions_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="two migrations share version 0001"):
        load_migrations(tmp_path)


def _logfill(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [LOGFILL_BIN, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


async def test_two_concurrent_migrate_processes_both_succeed_and_migrate_once(
    empty_database_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "LOGFILL_DATABASE_URL": empty_database_url}
    procs = [_logfill(env, tmp_path, "migrate") for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    applied = sorted(tuple(orjson.loads(out)["applied"]) for out, _ in outputs)
    assert applied == [(), tuple(m.label for m in KNOWN)]
    conn = await connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(KNOWN)
    finally:
        await conn.close()


async def test_cli_refuses_a_tampered_database_with_one_line(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    proc = _logfill(cli_env, tmp_path, "migrate")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert out == b""
    [line] = err.decode().strip().splitlines()
    assert line.startswith("logfill: migration 0001_schema changed after it was applied")
