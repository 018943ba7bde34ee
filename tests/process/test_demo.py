"""The demo's story, short: real anvil, real PostgreSQL, real receiver, `logfill run`.

Each step of `make demo` is asserted: the repeated POST is deduplicated, the
request completes, every transfer on chain is stored and delivered to a
receiver that verified every signature, the summary's figures add up, the
commands it prints work as pasted (the admin one on the demo's own database),
and nothing the demo started is left running, after success and after Ctrl-C.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest
from rich.console import Console

from demo.chain import PROJECT_ROOT
from demo.run import DemoOptions, run_demo
from demo.service import WINDOW_BUDGET_CU
from demo.story import Summary, check_summary
from tests.support.processes import LOGFILL_BIN, all_gone, descendants
from tests.support.terminal import in_terminal

BLOCKS = 300


def test_the_demo_story_end_to_end(database_url: str) -> None:
    before = descendants(os.getpid())
    output = io.StringIO()
    result = run_demo(
        DemoOptions(blocks=BLOCKS, database_url=database_url),
        Console(file=output, width=200, soft_wrap=True),
    )
    summary, text = result.summary, output.getvalue()

    assert summary.replay_id == summary.backfill_id and summary.replayed
    assert "Idempotent-Replayed: true" in text
    assert summary.status == "completed"
    assert summary.blocks >= BLOCKS
    assert summary.transfers_on_chain > BLOCKS // 10  # every active block pays someone
    assert summary.matches_stored == summary.new_matches == summary.transfers_on_chain
    assert summary.credits_charged == summary.new_matches
    assert summary.credits_before - summary.credits_after == summary.credits_charged
    assert summary.webhook_deliveries == summary.webhook_verified > 0
    assert summary.webhook_rejected == 0
    assert summary.webhook_events == summary.new_matches
    assert 2 <= summary.windows and summary.cu_spent <= summary.windows * WINDOW_BUDGET_CU
    # The dry run counts a head read (eth_blockNumber, 10 CU) per window; the request's
    # first window may follow the tick's idle one and use the heads it read.
    assert summary.cu_estimated - 10 <= summary.cu_spent <= summary.cu_estimated
    assert result.problems == []
    assert "Summary" in text and f"{summary.matches_stored:,}" in text
    assert "completed" in text and "100%" in text  # the progress bar ended full
    assert f"Database: {database_url}" in text

    assert all_gone(result.child_pids)
    assert descendants(os.getpid()) <= before


def test_the_summary_check_names_what_went_wrong() -> None:
    good = Summary(
        subscription_id="s",
        backfill_id="b",
        replay_id="b",
        replayed=True,
        status="completed",
        blocks=10,
        transfers_on_chain=5,
        matches_stored=5,
        new_matches=5,
        credits_charged=5,
        credits_before=100,
        credits_after=95,
        cu_spent=70,
        cu_estimated=70,
        windows=2,
        webhook_deliveries=1,
        webhook_verified=1,
        webhook_rejected=0,
        webhook_events=5,
        seconds=1.0,
    )
    assert check_summary(good) == []
    assert check_summary(replace(good, matches_stored=4)) == [
        "4 matches stored, 5 transfers on chain"
    ]
    assert check_summary(replace(good, webhook_rejected=1, webhook_verified=0)) == [
        "5 webhook events verified of 5, 1 rejected"
    ]
    assert check_summary(replace(good, credits_after=90)) == [
        "the balance did not go down by the credits charged"
    ]


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(LOGFILL_DATABASE_URL=database_url, LOGFILL_DATA_DIR=str(tmp_path / "data"))
    return env


# The end of what `--keep` prints after "The service is up" (its last command).
LAST_PRINTED = "/events?limit=3"


def printed_command(text: str, words: str) -> str:
    """The line the demo printed to try that holds `words`, as a user would copy it."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # rich's colours, in a terminal
    lines = [line.strip() for line in text.splitlines() if words in line]
    assert len(lines) == 1, text
    return lines[0]


def run_as_pasted(line: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`line` in bash, from the demo's folder, in a shell that sets no LOGFILL_* of its own
    (but another data dir: the default embedded PostgreSQL is not the demo's database)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env["LOGFILL_DATA_DIR"] = str(tmp_path / "default-data")
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def top_up_as_printed(text: str, cwd: Path, tmp_path: Path) -> dict[str, object]:
    """The printed `logfill admin credits add` reaches the demo's workspace; its answer."""
    workspace = re.search(r"workspace\s+([0-9a-f-]{36})", text)
    assert workspace, text
    line = printed_command(text, "admin credits add")
    assert line.startswith("LOGFILL_DATABASE_URL=") and "--amount 100" in line
    result = run_as_pasted(line, cwd, tmp_path)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    assert answer["workspace_id"] == workspace.group(1)
    return answer


def sign_in_to_the_printed_dashboard(text: str) -> None:
    """The printed dashboard URL and key sign in, and the printed request page shows it."""
    dashboard = re.search(r"dashboard\s+(http://\S+/dashboard/)", text)
    key = re.search(r"API key\s+(lf_\S+)", text)
    request = re.search(r"request\s+(http://\S+/dashboard/requests/(\S+))", text)
    assert dashboard and key and request, text
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        signed_in = browser.post(f"{dashboard.group(1)}sign-in", data={"api_key": key.group(1)})
        assert signed_in.status_code == 200 and "Credits" in signed_in.text
        page = browser.get(request.group(1))
        assert page.status_code == 200 and request.group(2) in page.text


def test_logfill_demo_keep_stays_up_until_ctrl_c_then_stops_everything(
    database_url: str, tmp_path: Path
) -> None:
    out = (tmp_path / "demo.out").open("w+")
    proc = subprocess.Popen(
        [LOGFILL_BIN, "demo", "--keep", "--blocks", "200"],
        env=_env(database_url, tmp_path),
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "The service is up" not in (tmp_path / "demo.out").read_text():
            assert proc.poll() is None, (tmp_path / "demo.out").read_text()
            assert time.monotonic() < deadline, "the demo did not come up"
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while LAST_PRINTED not in (tmp_path / "demo.out").read_text():
            assert time.monotonic() < deadline, (tmp_path / "demo.out").read_text()
            time.sleep(0.1)
        children = descendants(proc.pid)
        assert len(children) >= 2  # anvil and logfill run
        text = (tmp_path / "demo.out").read_text()
        assert "Idempotent-Replayed: true" in text and "API key" in text
        assert re.search(rf"database\s+{re.escape(database_url)}", text), text
        # 1,000,000 credits less one a match, plus the 100 of the printed top-up
        credits = top_up_as_printed(text, tmp_path, tmp_path)["credits"]
        assert isinstance(credits, int) and 1_000_000 - 200 < credits <= 1_000_100
        status = run_as_pasted(printed_command(text, "backfill status"), tmp_path, tmp_path)
        assert status.returncode == 0 and "completed" in status.stdout, status.stderr
        sign_in_to_the_printed_dashboard(text)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, (tmp_path / "demo.out").read_text()
    finally:
        if proc.poll() is None:  # a failed assertion: still stop what the demo started
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
    assert "Everything the demo started is stopped." in (tmp_path / "demo.out").read_text()
    assert all_gone(children)


def test_closing_the_terminal_of_the_demo_keep_stops_everything_it_started(
    tmp_path: Path,
) -> None:
    """`make demo ARGS=--keep` (= `python -m demo --keep`) in a terminal that is then closed.

    No database URL: the demo's own embedded PostgreSQL in its temporary folder, as a
    new user runs it. After the hang-up nothing it started runs, and its folder is gone.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    argv = [sys.executable, "-m", "demo", "--keep", "--blocks", "100"]
    with in_terminal(argv, env, cwd=PROJECT_ROOT) as terminal:
        terminal.wait_for("The service is up", timeout=180)
        shown = terminal.wait_for(LAST_PRINTED, timeout=5)
        text = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # rich's colours
        found = re.search(r"(/\S*logfill-demo-[^/\s]+)/logfill\.log", text)
        assert found, text
        folder = Path(found.group(1))
        children = descendants(terminal.proc.pid)  # anvil and `logfill run`
        server = {
            p.pid
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres" and str(folder) in " ".join(p.info["cmdline"] or [])
        }
        assert len(children) >= 2 and server and folder.is_dir(), text
        top_up_as_printed(text, PROJECT_ROOT, tmp_path)  # on the demo's embedded PostgreSQL
        terminal.close()
        assert terminal.proc.wait(timeout=60) == 0
    assert all_gone(children | server, timeout=15)
    assert not folder.exists()


@pytest.mark.parametrize("blocks", [0])
def test_logfill_demo_refuses_a_useless_history(
    database_url: str, tmp_path: Path, blocks: int
) -> None:
    result = subprocess.run(
        [LOGFILL_BIN, "demo", "--blocks", str(blocks)],
        env=_env(database_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--blocks" in result.stderr
