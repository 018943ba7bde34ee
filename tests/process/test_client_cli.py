"""`logfill backfill ...` against a live `logfill api` on a test database.

No worker runs, so requests stay where the commands put them. Errors of the
API (problem+json) must come out as one clear line and a non-zero exit code.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson
import pytest

from api.cli import main
from tests.support.processes import Live, Ran


@pytest.fixture
def cli(live: Live, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str, auth: bool = True) -> Ran:
        options = ["--api-url", live.url, "--api-key", live.key] if auth else []
        with pytest.raises(SystemExit) as stopped:
            main(["backfill", *args, *options])
        captured = capsys.readouterr()
        return Ran(int(stopped.value.code or 0), captured.out, captured.err)

    return run


def _create(cli: Any, live: Live, *extra: str) -> Ran:
    return cli(  # type: ignore[no-any-return]
        "create", "--subscription", live.subscription_id, "--from", "100", "--to", "200", *extra
    )


def test_create_prints_the_key_and_the_same_key_again_is_a_replay(cli: Any, live: Live) -> None:
    first = _create(cli, live, "--label", "env=test", "--label", "team=data", "--json")
    assert first.code == 0, first.err
    key = first.err.split("Idempotency-Key: ")[1].split()[0]
    uuid.UUID(key)  # a fresh uuid4 by default
    created = orjson.loads(first.out)
    assert created["status"] == "queued"
    assert created["labels"] == {"env": "test", "team": "data"}
    assert (created["from_block"], created["to_block"]) == (100, 200)

    again = _create(
        cli, live, "--label", "env=test", "--label", "team=data", "--idempotency-key", key
    )
    assert again.code == 0, again.err
    assert "replayed" in again.out and created["id"] in again.out
    history = live.http("GET", f"/v1/subscriptions/{live.subscription_id}/backfills")
    assert [b["id"] for b in history["items"]] == [created["id"]]


def test_dry_run_estimates_and_creates_nothing(cli: Any, live: Live) -> None:
    ran = _create(cli, live, "--dry-run")
    assert ran.code == 0, ran.err
    assert ran.out.startswith("dry run: 101 blocks (0 already covered, 0 from the log cache)")
    assert "Idempotency-Key" not in ran.err
    history = live.http("GET", f"/v1/subscriptions/{live.subscription_id}/backfills")
    assert history["items"] == []


def test_a_follow_dry_run_says_what_following_will_cost(cli: Any, live: Live) -> None:
    ran = cli(
        "create", "--subscription", live.subscription_id, "--from", "100", "--to", "follow",
        "--dry-run",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out.startswith("dry run: 1 blocks")  # no safe head known yet: from_block
    assert "then following: CU an hour unknown until a worker has seen the chain move" in ran.out


def test_status_list_pause_resume_cancel(cli: Any, live: Live) -> None:
    backfill_id = orjson.loads(_create(cli, live, "--order", "desc", "--json").out)["id"]

    status = cli("status", backfill_id)
    assert status.code == 0
    assert f"backfill {backfill_id}  queued" in status.out
    assert "100 -> 200 (desc)  cursor 200" in status.out

    listing = cli("list", "--subscription", live.subscription_id)
    assert listing.code == 0 and backfill_id in listing.out and "queued" in listing.out

    for action, after in (("pause", "paused"), ("resume", "queued"), ("cancel", "cancelled")):
        ran = cli(action, backfill_id, "--json")
        assert ran.code == 0, ran.err
        assert orjson.loads(ran.out)["status"] == after

    refused = cli("pause", backfill_id)
    assert refused.code == 1 and refused.out == ""
    assert refused.err.startswith("logfill: 409 ") and "cancelled" in refused.err
    assert refused.err.count("\n") == 1


def test_watch_draws_progress_until_a_terminal_status(cli: Any, live: Live) -> None:
    backfill_id = orjson.loads(_create(cli, live, "--json").out)["id"]

    def cancel_soon() -> None:
        time.sleep(0.8)
        live.http("POST", f"/v1/backfill/{backfill_id}/cancel")

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    ran = cli("watch", backfill_id, "--interval", "0.1")
    canceller.join()
    assert ran.code == 1  # ended, but not completed
    assert "cancelled" in ran.out and "cursor -" in ran.out and "matches 0" in ran.out
    assert f"backfill {backfill_id}  cancelled" in ran.out


def test_problems_are_one_clear_line_with_the_field_pointers(cli: Any, live: Live) -> None:
    ran = cli("create", "--subscription", live.subscription_id, "--from", "200", "--to", "100")
    assert ran.code == 1 and ran.out == ""
    line = ran.err.splitlines()[-1]
    assert line.startswith("logfill: 422 ")
    assert "/to_block" in line or "/from_block" in line
    assert "Traceback" not in ran.err

    unknown = cli("status", str(uuid.uuid4()))
    assert unknown.code == 1 and unknown.err.startswith("logfill: 404 ")

    bad_label = cli("create", "--subscription", live.subscription_id, "--label", "novalue")
    assert bad_label.code == 2 and "key=value" in bad_label.err


def test_url_and_key_from_the_environment(
    cli: Any, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGFILL_API_URL", live.url)
    monkeypatch.setenv("LOGFILL_API_KEY", live.key)
    ran = cli("list", "--subscription", live.subscription_id, "--json", auth=False)
    assert ran.code == 0, ran.err
    assert orjson.loads(ran.out) == {"items": [], "next": None}

    monkeypatch.delenv("LOGFILL_API_KEY")
    missing = cli("list", "--subscription", live.subscription_id, auth=False)
    assert missing.code == 2 and "LOGFILL_API_KEY" in missing.err

    monkeypatch.setenv("LOGFILL_API_KEY", live.key)
    monkeypatch.setenv("LOGFILL_API_URL", "http://127.0.0.1:9")
    unreachable = cli("list", "--subscription", live.subscription_id, auth=False)
    assert unreachable.code == 1
    assert unreachable.err.startswith("logfill: cannot reach the API at http://127.0.0.1:9")


def test_create_prints_the_request_id_and_its_estimated_window_start(cli: Any, live: Live) -> None:
    ran = _create(cli, live)
    assert ran.code == 0, ran.err
    first_line, second_line = ran.out.splitlines()[:2]
    assert first_line == "accepted"
    request_id = second_line.split()[1]
    uuid.UUID(request_id)
    [estimated] = [line for line in ran.out.splitlines() if "estimated" in line]
    start = estimated.split("window start ")[1].split(",")[0]
    shown = live.http("GET", f"/v1/backfill/{request_id}")
    assert start == shown["estimated_start_at"] is not None
