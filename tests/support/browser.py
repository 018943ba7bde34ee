"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a
real `logfill run` on a real anvil and a real PostgreSQL.

- `chromium` (module): the browser, started and stopped with each test module.
  Without Chromium (or Playwright) the tests skip with one line saying how to get
  it, except where `LOGFILL_REQUIRE_BROWSER=1` (`.ci/run` sets it): there a
  missing browser fails the run.
- `dashboard_service` (module): anvil with an ERC-20-like emitter and a history of
  transfers, a migrated database, `logfill run` with a 0.5 s tick on that chain,
  and two workspaces (the owner's, and a stranger's for isolation checks).
- `screenshot(page, name)`: full-page PNGs into build/screenshots (or
  `LOGFILL_SCREENSHOT_DIR`); `make screenshots` copies the README's one to docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from indexer.localhost import free_port
from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.database import Clones
from tests.support.processes import LOGFILL_BIN, make_workspace, wait_ready

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("LOGFILL_SCREENSHOT_DIR", REPO_ROOT / "build" / "screenshots"))
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
TRANSFERS = 40  # transfers on the chain before the service starts, one a block
SENDER = chain.DEV_ACCOUNTS[0]
RECEIVER = chain.DEV_ACCOUNTS[1]


def chromium_path() -> str | None:
    wanted = os.environ.get("LOGFILL_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else None
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _missing(reason: str) -> None:
    if os.environ.get("LOGFILL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required here, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium(clones: Clones) -> Iterator[Browser]:
    """The browser, for one module's tests. Playwright's sync API keeps an event loop
    running in the main thread while it is started: asyncio tests of other modules could
    not run beside it (so it stops with the module), and the database server, whose
    set-up uses asyncio.run, is started before it."""
    path = chromium_path()
    if path is None:
        _missing("no Chromium found: apt-get install chromium (or set LOGFILL_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed: pip install -e '.[dev]'")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class DashboardService:
    url: str
    chain_url: str
    chain_id: int
    token: str  # the emitter's checksummed address: Transfer events
    owner_key: str
    stranger_key: str
    database_url: str
    log_path: Path

    def page_url(self, path: str) -> str:
        return self.url + path

    def emit_transfers(self, count: int) -> None:
        for value in range(count):
            chain.emit_transfer(self.chain_url, self.token, SENDER, RECEIVER, 1000 + value)


@pytest.fixture(scope="module")
def dashboard_service(
    clones: Clones, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardService]:
    work = tmp_path_factory.mktemp("dashboard")
    name, database_url = clones.take()
    with AnvilNode() as node:
        token = chain.deploy_emitter(node.url)
        for value in range(TRANSFERS):
            chain.emit_transfer(node.url, token, SENDER, RECEIVER, value + 1)
        # Playwright's sync API keeps an event loop running in this thread: the
        # workspaces are made in another one.
        with ThreadPoolExecutor(1) as aside:
            owner_key = aside.submit(make_workspace, database_url, credits=1_000_000).result()
            stranger_key = aside.submit(make_workspace, database_url, credits=10).result()
        port = free_port()
        # Small windows (8 blocks a call, 300 CU each, one every 0.5 s), so that a
        # backfill of the chain takes several windows: a bar that moves, a chart with bars.
        chains = {
            str(node.chain_id): {
                "rpc_url": node.url,
                "confirmations": 0,
                "tick_seconds": 0.5,
                "max_block_range": 8,
                "window_budget_cu": 300,
            }
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
        env.update(
            LOGFILL_DATABASE_URL=database_url,
            LOGFILL_DATA_DIR=str(work / "data"),
            LOGFILL_LOG_FORMAT="json",
            LOGFILL_API_PORT=str(port),
            LOGFILL_CHAINS=json.dumps(chains),
            LOGFILL_WEBHOOK_ALLOW_PRIVATE="true",  # the tests' receiver is on 127.0.0.1
            LOGFILL_WEBHOOK_RETRY_SCHEDULE="0",  # one attempt: a failed delivery is dead
            LOGFILL_WORKER_METRICS_PORT="0",
        )
        log_path = work / "run.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [LOGFILL_BIN, "run"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url, proc)
                yield DashboardService(
                    url,
                    node.url,
                    node.chain_id,
                    token,
                    owner_key,
                    stranger_key,
                    database_url,
                    log_path,
                )
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
    clones.drop(name)


def new_page(browser: Browser, viewport: dict[str, int] | None = None) -> Page:
    context = browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    return context.new_page()


def sign_in(page: Page, service: DashboardService, key: str | None = None) -> None:
    page.goto(service.page_url("/dashboard/sign-in"))
    page.get_by_label("API key").fill(key or service.owner_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.page_url("/dashboard/"))


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def both_widths(browser: Browser, service: DashboardService, path: str, name: str) -> list[Any]:
    """Screenshots of one page at desktop and phone width, signed in as the owner."""
    shots = []
    for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = new_page(browser, viewport)
        sign_in(page, service)
        page.goto(service.page_url(path))
        shots.append(screenshot(page, f"{name}-{suffix}"))
        page.context.close()
    return shots
