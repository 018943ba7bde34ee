"""The aiohttp application factory.

`create_app` gathers every endpoint module's `OPERATIONS`, routes them and
builds /openapi.json from the same list, so the document cannot drift from
what is served. The database pool is either the caller's (`logfill run`
shares one with the worker) or opened and closed in `cleanup_ctx`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import orjson
from aiohttp import web

from api.auth import KeyCache
from api.dashboard import add_dashboard
from api.handlers import backfills, deliveries, events, health, subscriptions, workspace
from api.openapi import build_openapi
from api.presence import presence
from api.problems import problem_middleware
from api.ratelimit import RateLimiter
from api.routing import Operation, add_operations
from api.state import KEY_CACHE, MIGRATIONS, OPENAPI, POOL, RATE_LIMITER, SETTINGS
from indexer.db.migrate import load_migrations
from indexer.db.pool import create_pool
from indexer.settings import Settings

API_VERSION = "1.0.0"


def _database(
    settings: Settings, database_url: str | None, pool: asyncpg.Pool | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Use the caller's pool, or open (and later close) one of our own."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if pool is not None:
            app[POOL] = pool
            yield
            return
        url = database_url or settings.database_url
        if url is None:
            raise ValueError("create_app needs a pool or a database URL")
        app[POOL] = await create_pool(
            url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_connect_timeout_seconds,
        )
        yield
        await app[POOL].close()

    return context


def all_operations() -> list[Operation]:
    """Every endpoint, in the order /openapi.json lists them."""
    return [
        *workspace.OPERATIONS,
        *subscriptions.OPERATIONS,
        *events.OPERATIONS,
        *backfills.OPERATIONS,
        *deliveries.OPERATIONS,
        *health.OPERATIONS,
    ]


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    pool: asyncpg.Pool | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware], client_max_size=settings.api_max_body_bytes
    )
    app[SETTINGS] = settings
    app[MIGRATIONS] = load_migrations()
    app[KEY_CACHE] = KeyCache(settings.api_key_cache_seconds)
    app[RATE_LIMITER] = RateLimiter()
    operations = all_operations()
    app[OPENAPI] = orjson.dumps(build_openapi(operations, version=API_VERSION))
    app.cleanup_ctx.append(_database(settings, database_url, pool))
    app.cleanup_ctx.append(presence())
    add_operations(app, operations)
    if settings.dashboard_enabled:
        add_dashboard(app)
    return app
