"""Typed application keys shared by the API's modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from indexer.migrations import Migration
from indexer.settings import Settings

PROBLEM_TYPE_BASE = "https://logfill.dev/problems/"

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
MIGRATIONS = web.AppKey("migrations", list[Migration])

if TYPE_CHECKING:
    from api.auth import KeyCache
    from api.ratelimit import RateLimiter

KEY_CACHE: web.AppKey[KeyCache] = web.AppKey("key_cache")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
OPENAPI: web.AppKey[bytes] = web.AppKey("openapi", bytes)
