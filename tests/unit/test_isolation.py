"""A test sees only the configuration it sets: not the developer's `.env`, not their
exported LOGFILL_* variables (tests/conftest.py drops both before any test runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.settings import Settings


def test_a_dotenv_in_the_working_directory_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("LOGFILL_API_PORT=1\nLOGFILL_LOG_LEVEL=error\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.api_port == 8080
    assert settings.log_level != "error"


def test_no_exported_logfill_variable_reaches_a_test() -> None:
    """But the suite's own switches (`LOGFILL_REQUIRE_*`, which .ci/run sets), which no
    setting reads."""
    exported = [name for name in os.environ if name.startswith("LOGFILL_")]
    assert [name for name in exported if not name.startswith("LOGFILL_REQUIRE_")] == []
    assert not set(exported) & {f"LOGFILL_{name.upper()}" for name in Settings.model_fields}


def test_a_variable_the_test_sets_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGFILL_API_PORT", "1")
    assert Settings().api_port == 1
