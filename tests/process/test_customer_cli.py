"""The customer's whole command line against a live `logfill api`: subscriptions,
events (streamed, for analysis), deliveries, the workspace, and what `watch` says.

No worker runs; what a window would have written (stored matches, a dead
delivery, a request paused for credits) is put in the database directly.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import threading
import time
import uuid
from typing import Any

import orjson
import pytest

from api.cli import main
from indexer.db.pool import connect
from tests.support.factories import insert_match, random_log
from tests.support.processes import LOGFILL_BIN, TOKEN, Live, Ran
from tests.support.webhooks import insert_delivery

TRANSFER_TOPIC = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
PUBLIC_HOOK = "https://93.184.216.34/hook"  # a public address: accepted without DNS


@pytest.fixture
def cli(live: Live, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Ran:
        with pytest.raises(SystemExit) as stopped:
            main([*args, "--api-url", live.url, "--api-key", live.key])
        captured = capsys.readouterr()
        return Ran(int(stopped.value.code or 0), captured.out, captured.err)

    return run


def in_database(database_url: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
    async def apply() -> None:
        conn = await connect(database_url)
        try:
            for sql, args in statements:
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    asyncio.run(apply())


def store_transfers(database_url: str, subscription_id: str, blocks: range) -> None:
    """One decodable Transfer a block, as a window stores a match; value = block."""

    async def store() -> None:
        conn = await connect(database_url)
        try:
            for block in blocks:
                log = random_log(
                    block_number=block,
                    address=bytes.fromhex(TOKEN[2:]),
                    topics=[TRANSFER_TOPIC, bytes(12) + b"\x11" * 20, bytes(12) + b"\x22" * 20],
                    data=block.to_bytes(32, "big"),
                )
                await insert_match(conn, subscription_id, log)
        finally:
            await conn.close()

    asyncio.run(store())


def test_subscriptions_from_creation_to_deletion(cli: Any, live: Live) -> None:
    created = cli(
        "subscriptions", "create", "--chain-id", "1", "--name", "usdc",
        "--address", TOKEN, "--event", "Transfer(address indexed from, address indexed to, "
        "uint256 value)", "--webhook-url", PUBLIC_HOOK, "--json",
    )  # fmt: skip
    assert created.code == 0, created.err
    sub = orjson.loads(created.out)
    assert sub["webhook_secret"].startswith("whsec_") and "shown now only" in created.err

    listed = cli("subscriptions", "list")
    assert sub["id"] in listed.out and "usdc" in listed.out and PUBLIC_HOOK in listed.out
    shown = cli("subscriptions", "show", sub["id"])
    assert f"subscription {sub['id']}  usdc" in shown.out
    assert "secret" not in shown.out  # never again

    updated = cli(
        "subscriptions", "update", sub["id"], "--name", "usdc-2",
        "--no-stored-events", "--webhook-ordering", "strict", "--json",
    )  # fmt: skip
    assert updated.code == 0, updated.err
    after = orjson.loads(updated.out)
    assert (after["name"], after["stored_events"], after["webhook_ordering"]) == (
        "usdc-2",
        False,
        "strict",
    )
    assert after["addresses"] == [TOKEN]  # not given: kept
    nothing = cli("subscriptions", "update", sub["id"])
    assert nothing.code == 2 and "nothing to change" in nothing.err

    rotated = orjson.loads(cli("subscriptions", "rotate-secret", sub["id"], "--json").out)
    assert rotated["webhook_secret"] not in (None, sub["webhook_secret"])

    kept = cli("subscriptions", "delete", sub["id"])
    assert kept.code == 2 and "--yes" in kept.err
    assert live.http("GET", f"/v1/subscriptions/{sub['id']}")["id"] == sub["id"]
    deleted = cli("subscriptions", "delete", sub["id"], "--yes")
    assert deleted.code == 0, deleted.err
    gone = cli("subscriptions", "show", sub["id"])
    assert gone.code == 1 and gone.err.startswith("logfill: 404 ")


def test_events_list_streams_the_bounded_set_in_each_format(
    cli: Any, live: Live, database_url: str
) -> None:
    store_transfers(database_url, live.subscription_id, range(100, 160))
    bounds = ("--subscription", live.subscription_id, "--from-block", "110", "--to-block", "119")

    as_json = cli("events", "list", *bounds)
    assert as_json.code == 0, as_json.err
    events = orjson.loads(as_json.out)
    assert [e["block_number"] for e in events] == list(range(110, 120))
    assert events[0]["decoded"]["args"]["value"] == "110"

    as_ndjson = cli("events", "list", *bounds, "--format", "ndjson")
    assert [orjson.loads(line) for line in as_ndjson.out.splitlines()] == events

    as_csv = cli("events", "list", *bounds, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert [r["id"] for r in rows] == [e["id"] for e in events]
    assert rows[0]["event"] == "Transfer"

    everything = orjson.loads(cli("events", "list", "--subscription", live.subscription_id).out)
    assert len(everything) == 60
    empty = cli("events", "list", "--subscription", live.subscription_id, "--from-block", "999")
    assert orjson.loads(empty.out) == []
    reversed_bounds = cli(
        "events", "list", "--subscription", live.subscription_id,
        "--from-block", "5", "--to-block", "2",
    )  # fmt: skip
    assert reversed_bounds.code == 1 and reversed_bounds.out == ""
    assert reversed_bounds.err.startswith("logfill: 422 ") and "to_block" in reversed_bounds.err


def test_events_piped_into_head_stop_quietly(live: Live, database_url: str) -> None:
    store_transfers(database_url, live.subscription_id, range(1, 3001))  # ~2 MB of NDJSON
    env = {**os.environ, "LOGFILL_API_URL": live.url, "LOGFILL_API_KEY": live.key}
    with subprocess.Popen(
        [LOGFILL_BIN, "events", "list", "--subscription", live.subscription_id,
         "--format", "ndjson"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    ) as export:  # fmt: skip
        assert export.stdout is not None and export.stderr is not None
        first = [export.stdout.readline() for _ in range(3)]
        export.stdout.close()  # the reader has had enough, as `head -n 3` does
        assert export.wait(timeout=30) == 0
        assert export.stderr.read() == b""
    assert [orjson.loads(line)["block_number"] for line in first] == [1, 2, 3]


def test_deliveries_list_and_retry(cli: Any, live: Live, database_url: str) -> None:
    hooked = orjson.loads(
        cli(
            "subscriptions", "create", "--chain-id", "1", "--webhook-url", PUBLIC_HOOK, "--json"
        ).out
    )

    async def dead_delivery() -> uuid.UUID:
        conn = await connect(database_url)
        try:
            delivery = await insert_delivery(conn, uuid.UUID(hooked["id"]), events=3)
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'dead', attempts = 10,"
                " last_status_code = 500, last_error = $2 WHERE id = $1",
                delivery,
                "HTTP 500 \x1b[31mboom",
            )
            return delivery
        finally:
            await conn.close()

    delivery = str(asyncio.run(dead_delivery()))
    listed = cli("deliveries", "list", "--subscription", hooked["id"], "--status", "dead")
    assert listed.code == 0, listed.err
    assert delivery in listed.out and "dead" in listed.out
    assert "\x1b" not in listed.out and "\\x1b[31mboom" in listed.out
    retried = cli("deliveries", "retry", delivery)
    assert retried.code == 0, retried.err
    assert f"delivery {delivery}  pending" in retried.out
    again = cli("deliveries", "retry", delivery)
    assert again.code == 1 and again.err.startswith("logfill: 409 ")


def test_workspace_show_and_set(cli: Any) -> None:
    shown = cli("workspace", "show")
    assert shown.code == 0 and "credits      1000" in shown.out
    assert "backfill matches go to" in shown.out
    changed = cli("workspace", "set", "--no-backfill-webhooks", "--json")
    assert orjson.loads(changed.out)["backfill_webhooks"] is False
    assert "do not go" in cli("workspace", "show").out
    assert cli("workspace", "set").code == 2


def test_backfill_create_passes_rescan_and_redeliver(cli: Any, live: Live) -> None:
    ran = cli(
        "backfill", "create", "--subscription", live.subscription_id,
        "--from", "100", "--to", "200", "--rescan", "--redeliver", "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    created = orjson.loads(ran.out)
    assert (created["rescan"], created["redeliver"]) == (True, True)
    plain = cli(
        "backfill", "create", "--subscription", live.subscription_id,
        "--from", "300", "--to", "400", "--json",
    )  # fmt: skip
    assert (orjson.loads(plain.out)["rescan"], orjson.loads(plain.out)["redeliver"]) == (
        False,
        False,
    )


def test_user_text_is_printed_with_control_characters_escaped(cli: Any, live: Live) -> None:
    name = "evil\x1b[2J\u202e[red]x"
    sub = orjson.loads(cli("subscriptions", "create", "--chain-id", "1", "--name", name,
                           "--json").out)  # fmt: skip
    for shown in (cli("subscriptions", "show", sub["id"]).out, cli("subscriptions", "list").out):
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "evil\\x1b[2J\\u202e[red]x" in shown  # and `[red]` is not rich markup
    created = cli(
        "backfill", "create", "--subscription", live.subscription_id,
        "--from", "1", "--to", "2", "--label", "note=bell\x07here",
    )  # fmt: skip
    assert created.code == 0, created.err
    assert "note=bell\\x07here" in created.out and "\x07" not in created.out


def test_watch_off_a_terminal_prints_lines_and_says_how_to_top_up(
    cli: Any, live: Live, database_url: str
) -> None:
    backfill_id = orjson.loads(
        cli(
            "backfill", "create", "--subscription", live.subscription_id,
            "--from", "100", "--to", "200", "--json",
        ).out
    )["id"]  # fmt: skip
    in_database(
        database_url,
        ("UPDATE backfill_requests SET status = 'paused_credits' WHERE id = $1",
         (uuid.UUID(backfill_id),)),
    )  # fmt: skip
    workspace_id = live.http("GET", "/v1/workspace")["id"]

    def cancel_soon() -> None:
        time.sleep(1.0)
        live.http("POST", f"/v1/backfill/{backfill_id}/cancel")

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    ran = cli("backfill", "watch", backfill_id, "--interval", "0.1")
    canceller.join()
    assert ran.code == 1  # cancelled
    lines = ran.out.splitlines()
    progress = [line for line in lines if line[:4].isdigit()]  # timestamped lines
    assert [line.split()[1] for line in progress] == ["paused_credits", "cancelled"]
    hints = [line for line in lines if "out of credits" in line]
    assert len(hints) == 1
    assert f"logfill admin credits add --workspace {workspace_id} --amount N" in hints[0]
    assert "\r" not in ran.out and "\x1b" not in ran.out  # no bar redrawn into a log
