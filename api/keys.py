"""Typed application keys shared by the API's modules."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from indexer.migrations import Migration
from indexer.settings import Settings

PROBLEM_TYPE_BASE = "https://logfill.dev/problems/"

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
MIGRATIONS = web.AppKey("migrations", list[Migration])
