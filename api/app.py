"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web

from api.health import add_health_routes
from api.keys import MIGRATIONS, POOL, SETTINGS
from api.problems import problem_middleware
from indexer.db import create_pool
from indexer.migrations import load_migrations
from indexer.settings import Settings

MAX_BODY_BYTES = 64 * 1024


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


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    pool: asyncpg.Pool | None = None,
) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[MIGRATIONS] = load_migrations()
    app.cleanup_ctx.append(_database(settings, database_url, pool))
    add_health_routes(app)
    return app
