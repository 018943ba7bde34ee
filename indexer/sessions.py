"""Dashboard sessions: an owner signs in with an API key and gets a browser session.

The cookie carries a random token; the database keeps only its SHA-256, so a
leaked table opens no session. A session is server-side on purpose: signing
out deletes it (a copied cookie is then worthless), it expires, and it dies
with the API key it was opened with (revoked keys find no session). Each
session has its own CSRF token, which every state-changing form must carry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from indexer.accounts import find_api_key, hash_api_key
from indexer.db import queries
from indexer.db.pool import Connection

MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie only; never stored
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    workspace_id: uuid.UUID
    api_key_id: uuid.UUID
    csrf_token: str
    expires_at: datetime
    requests_per_minute: int

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def sign_in(conn: Connection, api_key: str, lifetime_seconds: float) -> NewSession | None:
    """A session for a valid API key; None for anything else (say nothing more)."""
    api_key = api_key.strip()
    if not api_key or len(api_key) > MAX_KEY_LENGTH:
        return None
    digest = hash_api_key(api_key)
    owner = await find_api_key(conn, digest)
    if owner is None or not hmac.compare_digest(owner.key_sha256, digest):
        return None
    token = secrets.token_urlsafe(32)
    expires_at = await queries.fetchval(
        conn,
        "open_session",
        token_sha256=_digest(token),
        api_key_id=owner.key_id,
        csrf_token=secrets.token_urlsafe(32),
        lifetime_seconds=float(lifetime_seconds),
    )
    return NewSession(token, expires_at)


async def find_session(conn: Connection, token: str | None) -> Session | None:
    if not token or len(token) > MAX_KEY_LENGTH:
        return None
    row = await queries.fetchrow(conn, "find_session", token_sha256=_digest(token))
    if row is None:
        return None
    return Session(
        row["workspace_id"],
        row["api_key_id"],
        row["csrf_token"],
        row["expires_at"],
        row["api_requests_per_minute"],
    )


async def sign_out(conn: Connection, token: str | None) -> None:
    if token:
        await queries.execute(conn, "close_session", token_sha256=_digest(token))


async def forget_expired(conn: Connection) -> int:
    status = await queries.execute(conn, "delete_expired_sessions")
    return int(status.split()[-1])
