"""What `create_app` keeps on the application, under typed keys.

Handlers and middleware read the settings, the pool and the per-process caches
from `request.app[...]`; a `web.AppKey` carries the value's type, so mypy checks
every such read without a cast.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from api.auth import KeyCache
from api.ratelimit import RateLimiter
from indexer.db.migrate import Migration
from indexer.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
MIGRATIONS = web.AppKey("migrations", list[Migration])
KEY_CACHE = web.AppKey("key_cache", KeyCache)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
OPENAPI = web.AppKey("openapi", bytes)  # /openapi.json, serialised once at start
