"""Bearer API keys -> workspace.

Only the SHA-256 of a key is stored; a request's key is hashed and looked up
by its hash, then compared in constant time (`hmac.compare_digest`), so the
time an answer takes says nothing about how much of a key was right. Keys are
never logged. A lookup is cached for `api_key_cache_seconds` in the process
(a revoked key keeps working that long at most), which saves a database round
trip on nearly every request.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from api.problems import Problem
from indexer.accounts import find_api_key, hash_api_key

MAX_KEY_LENGTH = 512
MAX_CACHED = 50_000
_CHALLENGE = 'Bearer realm="logfill"'


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    workspace_id: uuid.UUID
    requests_per_minute: int


class KeyCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, digest: bytes, now: float) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def put(self, digest: bytes, principal: Principal, now: float) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= MAX_CACHED:
            self._entries = {d: e for d, e in self._entries.items() if e[1] > now}
            if len(self._entries) >= MAX_CACHED:
                self._entries.clear()
        self._entries[digest] = (principal, now + self.ttl)


def unauthorized(detail: str, *, invalid: bool) -> Problem:
    challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
    return Problem(
        401,
        "Unauthorized",
        detail,
        problem_type="unauthorized",
        headers={"WWW-Authenticate": challenge},
    )


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send your API key as 'Authorization: Bearer <key>'", invalid=False)
    return token.strip()


async def authenticate(request: web.Request, pool: asyncpg.Pool, cache: KeyCache) -> Principal:
    token = bearer_token(request)
    if len(token) > MAX_KEY_LENGTH:
        raise unauthorized("the API key is not valid", invalid=True)
    digest = hash_api_key(token)
    now = time.monotonic()
    principal = cache.get(digest, now)
    if principal is not None:
        return principal
    owner = await find_api_key(pool, digest)
    if owner is None or not hmac.compare_digest(owner.key_sha256, digest):
        raise unauthorized("the API key is not valid", invalid=True)
    principal = Principal(owner.key_id, owner.workspace_id, owner.requests_per_minute)
    cache.put(digest, principal, now)
    return principal
