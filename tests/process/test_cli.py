"""The `logfill` command as an operator runs it: JSON on stdout, one clear line on errors."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.support.processes import LOGFILL_BIN, logfill


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command says; logs (JSON lines) are not part of it."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


async def test_workspace_create_prints_id_and_a_key_stored_only_as_sha256(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = logfill(
        cli_env, tmp_path, "admin", "workspace", "create",
        "--name", "acme", "--plan", "pro", "--credits", "1000",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = orjson.loads(result.stdout)
    assert set(answer) == {"workspace_id", "api_key"}
    workspace_id = uuid.UUID(answer["workspace_id"])
    api_key = answer["api_key"]
    assert api_key.startswith("lf_") and len(api_key) >= 40

    row = await conn.fetchrow(
        "SELECT name, plan, credits FROM workspaces WHERE id = $1", workspace_id
    )
    assert row is not None
    assert dict(row.items()) == {"name": "acme", "plan": "pro", "credits": 1000}
    stored = await conn.fetchval(
        "SELECT key_sha256 FROM api_keys WHERE workspace_id = $1", workspace_id
    )
    assert stored == hashlib.sha256(api_key.encode()).digest()
    dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM api_keys t")
    assert api_key not in dump
    ledger = await conn.fetch("SELECT delta, balance_after, reason FROM credit_ledger")
    assert [tuple(r.values()) for r in ledger] == [(1000, 1000, "initial")]


async def test_two_workspaces_get_different_keys(cli_env: dict[str, str], tmp_path: Path) -> None:
    args = ("admin", "workspace", "create", "--name", "a", "--plan", "free")
    keys = {orjson.loads(logfill(cli_env, tmp_path, *args).stdout)["api_key"] for _ in range(2)}
    assert len(keys) == 2


async def test_credits_add_tops_up_and_writes_the_ledger(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    created = logfill(cli_env, tmp_path, "admin", "workspace", "create", "--name", "a",
                      "--plan", "pro", "--credits", "10")  # fmt: skip
    workspace_id = orjson.loads(created.stdout)["workspace_id"]
    result = logfill(
        cli_env, tmp_path, "admin", "credits", "add", "--workspace", workspace_id, "--amount", "25"
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"workspace_id": workspace_id, "credits": 35}
    ledger = await conn.fetch("SELECT delta, balance_after, reason FROM credit_ledger ORDER BY id")
    assert [tuple(r.values()) for r in ledger] == [(10, 10, "initial"), (25, 35, "top_up")]


async def test_plan_set_moves_the_workspace(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    created = logfill(
        cli_env, tmp_path, "admin", "workspace", "create", "--name", "a", "--plan", "free"
    )
    workspace_id = orjson.loads(created.stdout)["workspace_id"]
    result = logfill(cli_env, tmp_path, "admin", "plan", "set",
                     "--workspace", workspace_id, "--plan", "enterprise")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"workspace_id": workspace_id, "plan": "enterprise"}
    assert await conn.fetchval("SELECT plan FROM workspaces") == "enterprise"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("admin", "workspace", "create", "--name", "a", "--plan", "gold"),
            "logfill: unknown plan 'gold'; known plans: enterprise, free, pro",
        ),
        (
            ("admin", "workspace", "create", "--name", "a", "--plan", "pro", "--credits", "-5"),
            "logfill: credits must be >= 0, got -5",
        ),
        (
            ("admin", "credits", "add", "--workspace", str(uuid.UUID(int=7)), "--amount", "5"),
            f"logfill: no workspace {uuid.UUID(int=7)}",
        ),
        (
            ("admin", "credits", "add", "--workspace", "acme", "--amount", "5"),
            "logfill: workspace id must be a UUID, got 'acme'",
        ),
        (
            ("admin", "credits", "add", "--workspace", str(uuid.UUID(int=7)), "--amount", "0"),
            "logfill: amount must be a positive number of credits, got 0",
        ),
        (
            ("admin", "plan", "set", "--workspace", str(uuid.UUID(int=7)), "--plan", "pro"),
            f"logfill: no workspace {uuid.UUID(int=7)}",
        ),
    ],
)
async def test_admin_mistakes_get_one_clear_line_and_change_nothing(
    conn: asyncpg.Connection,
    cli_env: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    result = logfill(cli_env, tmp_path, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert error_line(result) == message
    assert await conn.fetchval("SELECT count(*) FROM workspaces") == 0
    assert await conn.fetchval("SELECT count(*) FROM credit_ledger") == 0


@pytest.mark.parametrize(
    "command",
    [("migrate",), ("admin", "workspace", "create", "--name", "a", "--plan", "pro"), ("worker",)],
)
def test_an_unreachable_database_is_one_line_and_exit_2(
    cli_env: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = {**cli_env, "LOGFILL_DATABASE_URL": "postgresql://logfill:secret@127.0.0.1:9/logfill"}
    result = logfill(env, tmp_path, *command)
    assert result.returncode == 2
    line = error_line(result)
    assert line == (
        "logfill: cannot reach the database at postgresql://logfill:***@127.0.0.1:9/logfill:"
        " connection refused"
    )
    assert "secret" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOGFILL_CHAINS",
            '{"1": {"rpc_url": "http://x", "max_block_range": 0}}',
            "logfill: invalid setting LOGFILL_CHAINS[1].max_block_range: "
            "Input should be greater than 0",
        ),
        (
            "LOGFILL_CHAINS",
            "{not json",
            'logfill: invalid settings: error parsing value for field "chains" from source '
            '"EnvSettingsSource"',
        ),
        (
            "LOGFILL_API_PORT",
            "eighty",
            "logfill: invalid setting LOGFILL_API_PORT: "
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "LOGFILL_DATABASE_URL",
            "mysql://x",
            "logfill: invalid setting LOGFILL_DATABASE_URL: "
            "String should match pattern '^postgres(ql)?://'",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(
    cli_env: dict[str, str], tmp_path: Path, variable: str, value: str, message: str
) -> None:
    result = logfill({**cli_env, variable: value}, tmp_path, "api")
    assert result.returncode == 2
    assert error_line(result) == message


def test_settings_are_read_from_a_dotenv_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOGFILL_API_PORT=not-a-port\n")
    result = logfill(cli_env, tmp_path, "api")
    assert result.returncode == 2
    assert "LOGFILL_API_PORT" in error_line(result)


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("migrate",),
        ("api",),
        ("worker",),
        ("run",),
        ("admin",),
        ("admin", "workspace"),
        ("admin", "workspace", "create"),
        ("admin", "credits", "add"),
        ("admin", "plan", "set"),
        ("admin", "workspace", "list"),
        ("admin", "key"),
        ("admin", "key", "create"),
        ("admin", "key", "list"),
        ("admin", "key", "revoke"),
        ("subscriptions", "create"),
        ("subscriptions", "update"),
        ("events", "list"),
        ("deliveries", "list"),
        ("workspace", "set"),
    ],
)
def test_every_command_has_help(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [LOGFILL_BIN, *command, "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: logfill")
