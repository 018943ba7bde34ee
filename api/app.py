"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import orjson
from aiohttp import web

from api import backfills, deliveries, health, subscriptions, workspace
from api.auth import KeyCache
from api.keys import KEY_CACHE, MIGRATIONS, OPENAPI, POOL, RATE_LIMITER, SETTINGS
from api.models import Health, Ready
from api.openapi import build_openapi
from api.problems import problem_middleware
from api.ratelimit import RateLimiter
from api.routing import Answer, Call, Operation, add_operations
from indexer.db import create_pool
from indexer.migrations import load_migrations
from indexer.settings import Settings

API_VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024  # the default of LOGFILL_API_MAX_BODY_BYTES


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


async def _openapi(call: Call) -> web.Response:
    return web.Response(body=call.request.app[OPENAPI], content_type="application/json")


def _operations_endpoints() -> list[Operation]:
    """Operations endpoints (no auth, no rate limit), documented like the rest."""

    async def healthz(call: Call) -> web.Response:
        return await health.healthz(call.request)

    async def readyz(call: Call) -> web.Response:
        return await health.readyz(call.request)

    async def metrics(call: Call) -> web.Response:
        return await health.metrics(call.request)

    return [
        Operation("GET", "/healthz", "healthz", "The process is up", healthz,
                  [Answer(200, "Up", Health)], tag="operations", auth=False),
        Operation("GET", "/readyz", "readyz", "Database reachable and migrations current",
                  readyz, [Answer(200, "Ready", Ready)], tag="operations", auth=False,
                  refusals={503: "Not ready"}),
        Operation("GET", "/metrics", "metrics", "Prometheus metrics", metrics,
                  [Answer(200, "Prometheus text format", media_type="text/plain")],
                  tag="operations", auth=False),
        Operation("GET", "/openapi.json", "openapi", "This document", _openapi,
                  [Answer(200, "OpenAPI 3.1", media_type="application/json")],
                  tag="operations", auth=False),
    ]  # fmt: skip


def all_operations() -> list[Operation]:
    return [
        *workspace.OPERATIONS,
        *subscriptions.OPERATIONS,
        *backfills.OPERATIONS,
        *deliveries.OPERATIONS,
        *_operations_endpoints(),
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
    add_operations(app, operations)
    return app
