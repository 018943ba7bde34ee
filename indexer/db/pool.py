"""PostgreSQL connections: the asyncpg pool and the translation of driver errors."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from indexer.errors import DatabaseUnavailable

# A plain connection or one borrowed from a pool: both run queries the same way.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Errors that mean "the database is not there for us right now", as opposed to a
# bad query: a closed or refused connection, a timeout, a server that is starting,
# shutting down or full. Callers answer them with a retry (503, the next poll),
# never as a bug. The one list; every caller uses it (or CONNECT_ERRORS).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)
# Opening a connection can also fail on the server's answer (no such database, a
# wrong password) or a malformed DSN (asyncpg's ClientConfigurationError).
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    *UNAVAILABLE_ERRORS,
    asyncpg.PostgresError,
    ValueError,
)


def redact_url(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset when a connection goes back to the pool. logfill keeps no session
    state on pooled connections (its locks are transaction-scoped, it sets no
    session settings, its temp tables are emptied at commit), and asyncpg's reset
    query would cost one more round trip per API request. A transaction left open
    by an interrupted task is still rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
) -> asyncpg.Pool:
    """Open a pool, or raise DatabaseUnavailable with one line an operator can act on."""
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            init=_init_connection,
            reset=_keep_session,
        )
    except CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database at {redact_url(url)}: {describe_connect_error(exc)}"
        ) from exc
    return pool


async def connect(url: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """One connection outside any pool (migrations, admin commands, tests)."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(url, timeout=timeout)
    except CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database at {redact_url(url)}: {describe_connect_error(exc)}"
        ) from exc
    await _init_connection(conn)
    return conn
