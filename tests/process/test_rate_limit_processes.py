"""A key's rate limit holds across `logfill api` processes: three processes behind a
round-robin client let through the plan's requests per minute, not three times it."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path

import httpx

from indexer.db.pool import connect
from tests.support.processes import ApiProcess, api_process, make_workspace

PER_MINUTE = 60


def counted_processes(api: ApiProcess) -> float:
    metrics = httpx.get(f"{api.url}/metrics", timeout=5).text
    found = re.search(r"^logfill_api_processes (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def add_plan(database_url: str) -> None:
    async def insert() -> None:
        conn = await connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO plans (name, backfill_enabled, max_backfill_blocks,"
                " api_requests_per_minute) VALUES ('metered', true, 1000, $1)",
                PER_MINUTE,
            )
        finally:
            await conn.close()

    asyncio.run(insert())


def test_a_keys_rate_limit_holds_across_three_api_processes(
    database_url: str, tmp_path: Path
) -> None:
    add_plan(database_url)
    key = make_workspace(database_url, plan="metered")
    beats = {"LOGFILL_API_PRESENCE_SECONDS": "0.3"}
    with (
        api_process(database_url, tmp_path / "a", **beats) as a,
        api_process(database_url, tmp_path / "b", **beats) as b,
        api_process(database_url, tmp_path / "c", **beats) as c,
    ):
        apis = (a, b, c)
        deadline = time.monotonic() + 15
        while any(counted_processes(api) != 3 for api in apis):
            counts = [counted_processes(api) for api in apis]
            assert time.monotonic() < deadline, f"the processes never counted 3: {counts}"
            time.sleep(0.1)

        headers = {"Authorization": f"Bearer {key}"}
        started = time.monotonic()
        with httpx.Client(timeout=10) as client:
            statuses = [
                client.get(f"{api.url}/v1/workspace", headers=headers).status_code
                for api in itertools.islice(itertools.cycle(apis), 3 * PER_MINUTE)
            ]
        elapsed = time.monotonic() - started
    allowed = statuses.count(200)
    assert set(statuses) == {200, 429}
    # The plan's minute (60), plus what refilled while the requests ran (1 a second).
    assert PER_MINUTE * 0.9 <= allowed <= (PER_MINUTE + elapsed) * 1.1, (allowed, elapsed)
