"""Logs: JSON lines on stderr off a terminal, ids bound through contextvars."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from indexer.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_events_are_json_lines_with_bound_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    log = structlog.get_logger("logfill.test")
    with structlog.contextvars.bound_contextvars(backfill_id="bf-1", chain_id=1):
        log.info("window_finished", cu_spent=120, calls=2)
    log.debug("too_quiet")
    logging.getLogger("aiohttp.access").info("GET /healthz")

    lines = capsys.readouterr().err.splitlines()
    first, second = (orjson.loads(line) for line in lines)
    assert first["event"] == "window_finished"
    assert (first["backfill_id"], first["chain_id"], first["cu_spent"]) == ("bf-1", 1, 120)
    assert first["level"] == "info" and "timestamp" in first
    assert second["event"] == "GET /healthz"  # stdlib loggers come out the same way
    assert "backfill_id" not in second  # unbound after the block


def test_console_format_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console")
    structlog.get_logger("logfill.test").info("worker_started", chains=[1])
    line = capsys.readouterr().err
    assert "worker_started" in line and "chains" in line
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(line)
