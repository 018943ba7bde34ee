"""The whole suite: isolated from the developer's configuration, fixtures from tests/support.

Tiers, one folder each (`pytest tests/unit tests/db` is the fast set):
- unit/: pure code; no database, no node, no subprocess;
- db/: a real PostgreSQL, everything else in-process (the API through aiohttp's test server);
- chain/: a real anvil node or the scripted fake provider (tests/support/fake_provider.py);
- process/: `logfill` processes (kill -9, signals, the demo, the CLI against a live API) and
  other subprocesses;
- browser/: the dashboard in Debian's Chromium through Playwright, against `logfill run` on
  anvil (tests/support/browser.py; they skip without Chromium, except under .ci/run).

`LOGFILL_TEST_DATABASE_URL` names a PostgreSQL server to use (any database on it;
tests create their own). Without it an embedded PostgreSQL is started for the
session, which is the path a fresh machine takes.

Every other `LOGFILL_*` variable a developer exported is dropped here, at import
(but the suite's switches, `LOGFILL_REQUIRE_BROWSER` and `LOGFILL_REQUIRE_TOOLS`),
and `Settings` reads no `.env`, so a test sees only the configuration it sets
itself. Processes the tests start get an environment built the same way
(`cli_env`, `service_env`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.settings import Settings

# Read first: the environment is cleaned of every LOGFILL_* variable just below, except
# the suite's own switches (`LOGFILL_REQUIRE_*`, set by .ci/run: a missing browser or
# tool fails the run there instead of skipping), which no Settings field reads.
TEST_DATABASE_URL = os.environ.get("LOGFILL_TEST_DATABASE_URL")
for _name in [name for name in os.environ if name.startswith("LOGFILL_")]:
    if not _name.startswith("LOGFILL_REQUIRE_"):
        del os.environ[_name]

# Settings reads `.env` from the working directory; a test never should. (Settings are read
# when made, not when imported, so this holds for every Settings() of the run.)
Settings.model_config["env_file"] = None

# Helpers' own asserts get pytest's explanations too (the fixture modules get them anyway).
pytest.register_assert_rewrite("tests.support")

pytest_plugins = [
    "tests.support.database",
    "tests.support.processes",
    "tests.support.chain",
    "tests.support.api",
    "tests.support.browser",
]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a maintenance database on a real PostgreSQL server."""
    if TEST_DATABASE_URL:
        yield TEST_DATABASE_URL
        return
    from indexer.db.embedded import embedded_database

    with tempfile.TemporaryDirectory(prefix="logfill-test-pg-") as data_dir:
        with embedded_database(Path(data_dir)) as url:
            yield url
