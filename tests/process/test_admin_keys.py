"""`logfill admin workspace list` and `logfill admin key ...` as an operator runs them,
against a running `logfill api`."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from tests.support.processes import LOGFILL_BIN, answer, api_process, logfill, refusal

UNKNOWN = str(uuid.UUID(int=7))


def status_with(api_url: str, api_key: str) -> int:
    headers = {"Authorization": f"Bearer {api_key}"}
    return httpx.get(f"{api_url}/v1/workspace", headers=headers, timeout=5).status_code


async def test_a_workspace_gets_more_keys_that_work_until_revoked(
    database_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env, cwd = cli_env, tmp_path
    created = answer(env, cwd, "admin", "workspace", "create", "--name", "acme", "--plan", "pro")
    workspace = created["workspace_id"]
    ci = answer(env, cwd, "admin", "key", "create", "--workspace", workspace, "--name", "ci")
    spare = answer(env, cwd, "admin", "key", "create", "--workspace", workspace)
    assert set(ci) == {"id", "workspace_id", "name", "api_key", "prefix", "created_at"}
    assert (ci["workspace_id"], ci["name"], spare["name"]) == (workspace, "ci", None)
    assert ci["api_key"].startswith(ci["prefix"]) and len(ci["prefix"]) == 10

    listed = logfill(env, cwd, "admin", "key", "list", "--workspace", workspace)
    keys = orjson.loads(listed.stdout)
    assert [k["id"] for k in keys[1:]] == [ci["id"], spare["id"]]
    assert [k["prefix"] for k in keys] == [created["api_key"][:10], ci["prefix"], spare["prefix"]]
    for key in (created["api_key"], ci["api_key"], spare["api_key"]):
        assert key not in listed.stdout

    with api_process(database_url, tmp_path / "api") as api:
        assert status_with(api.url, created["api_key"]) == 200
        assert status_with(api.url, ci["api_key"]) == 200
        # `spare` was never used, so no API process has it cached: refused at once.
        revoked = answer(env, cwd, "admin", "key", "revoke", spare["id"])
        assert (revoked["id"], revoked["already_revoked"]) == (spare["id"], False)
        assert status_with(api.url, spare["api_key"]) == 401
        assert status_with(api.url, created["api_key"]) == 200
        assert status_with(api.url, ci["api_key"]) == 200

    again = answer(env, cwd, "admin", "key", "revoke", "--key", spare["id"],
                   "--workspace", workspace)  # fmt: skip
    assert (again["already_revoked"], again["revoked_at"]) == (True, revoked["revoked_at"])
    keys = answer(env, cwd, "admin", "key", "list", "--workspace", workspace)
    assert [k["revoked_at"] for k in keys] == [None, None, revoked["revoked_at"]]
    [summary] = answer(env, cwd, "admin", "workspace", "list")
    assert (summary["id"], summary["name"], summary["active_keys"]) == (workspace, "acme", 2)


async def test_workspaces_are_listed_oldest_first(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert answer(cli_env, tmp_path, "admin", "workspace", "list") == []
    ids = [
        answer(cli_env, tmp_path, "admin", "workspace", "create", "--name", name,
               "--plan", "free", "--credits", credits)["workspace_id"]
        for name, credits in (("first", "0"), ("second", "30"))
    ]  # fmt: skip
    listed = answer(cli_env, tmp_path, "admin", "workspace", "list")
    assert [(w["id"], w["name"], w["plan"], w["credits"], w["active_keys"]) for w in listed] == [
        (ids[0], "first", "free", 0, 1),
        (ids[1], "second", "free", 30, 1),
    ]
    assert set(listed[0]) == {"id", "name", "plan", "credits", "created_at", "active_keys"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("admin", "key", "create", "--workspace", UNKNOWN, "--name", "ci"),
            f"logfill: no workspace {UNKNOWN}",
        ),
        (
            ("admin", "key", "create", "--workspace", "acme"),
            "logfill: workspace id must be a UUID, got 'acme'",
        ),
        (
            ("admin", "key", "list", "--workspace", UNKNOWN),
            f"logfill: no workspace {UNKNOWN}",
        ),
        (
            ("admin", "key", "revoke", UNKNOWN),
            f"logfill: no API key {UNKNOWN}",
        ),
        (
            ("admin", "key", "revoke", "--key", "lf_abc"),
            "logfill: key id must be a UUID, got 'lf_abc'",
        ),
        (
            ("admin", "key", "revoke", "--key", UNKNOWN, "--workspace", "acme"),
            "logfill: workspace id must be a UUID, got 'acme'",
        ),
    ],
)
async def test_key_mistakes_get_one_clear_line_and_change_nothing(
    conn: asyncpg.Connection,
    cli_env: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    assert refusal(logfill(cli_env, tmp_path, *args)) == message
    assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_a_key_of_another_workspace_is_not_revoked(
    conn: asyncpg.Connection, cli_env: dict[str, str], tmp_path: Path
) -> None:
    create = ("admin", "workspace", "create", "--name", "a", "--plan", "pro")
    owner, other = (answer(cli_env, tmp_path, *create)["workspace_id"] for _ in range(2))
    [key] = answer(cli_env, tmp_path, "admin", "key", "list", "--workspace", owner)
    result = logfill(cli_env, tmp_path, "admin", "key", "revoke", key["id"], "--workspace", other)
    assert refusal(result) == f"logfill: no API key {key['id']} in workspace {other}"
    assert await conn.fetchval("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL") == 0


def test_revoke_help_says_how_soon_a_revoked_key_stops(tmp_path: Path) -> None:
    result = subprocess.run(
        [LOGFILL_BIN, "admin", "key", "revoke", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "LOGFILL_API_KEY_CACHE_SECONDS" in result.stdout
