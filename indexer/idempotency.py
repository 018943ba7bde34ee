"""Idempotency-Key for POST requests (IETF httpapi draft, Stripe semantics).

A key belongs to a workspace. The first request with a key is handled while
holding a transaction-scoped advisory lock on (workspace, key), and the key is
claimed, with the response it got, in the very transaction that creates the
request: either both exist or neither does. Later requests with the key get
that response again (same body: replayed; another body: refused). A request
arriving while the first still holds the lock gets 409 at once rather than
waiting. Only responses that created something are stored: a refusal (4xx) or
a dry run leaves the key unused, so the client can fix the problem and retry
with the same key. Keys expire after `idempotency_ttl_seconds`; an expired key
counts as unused (deleted and claimed again in the same transaction).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from indexer.db import queries
from indexer.db.pool import Connection
from indexer.refusals import IdempotencyKeyInFlight, IdempotencyKeyReused

MAX_KEY_LENGTH = 255
_VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def is_valid_key(key: str) -> bool:
    """1-255 printable ASCII characters (space included, as Stripe allows)."""
    return bool(_VALID_KEY.match(key))


def fingerprint(method: str, route: str, body: Any) -> bytes:
    """SHA-256 of method, route and the body as canonical JSON (sorted keys, no spaces)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(
        method.upper().encode() + b" " + route.encode() + b"\n" + canonical
    ).digest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What handling a request produced; `created` responses are kept for replay."""

    response: StoredResponse
    created: uuid.UUID | None = None  # the id of what was created, if anything


Handle = Callable[[Connection], Awaitable[Outcome]]
Lookup = Callable[[Connection], Awaitable[Any]]


async def run_once(
    conn: Connection,
    workspace_id: uuid.UUID,
    key: str | None,
    request_fingerprint: bytes,
    *,
    ttl_seconds: int,
    handle: Handle,
    lookup: Lookup | None = None,
) -> tuple[StoredResponse, bool]:
    """Handle a request at most once per key; returns the response and whether it is a replay.

    `lookup`, if given, reads what `lock_and_find_idempotency_key` reads (its columns,
    with the same lock) together with what the handler needs, in one round trip."""
    async with conn.transaction():
        if key is None:
            return (await handle(conn)).response, False
        if lookup is not None:
            found = await lookup(conn)
        else:
            found = await queries.fetchrow(
                conn, "lock_and_find_idempotency_key", workspace_id=workspace_id, key=key
            )
        assert found is not None
        locked, stored = found["locked"], found if found["fingerprint"] is not None else None
        if stored is not None and not stored["expired"]:
            if stored["fingerprint"] != request_fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used with another request body; "
                    "use a new key for a new request"
                )
            if stored["response_status"] is None:
                raise IdempotencyKeyInFlight()
            return _replay(stored), True
        if not locked:
            raise IdempotencyKeyInFlight()
        if stored is not None:
            await queries.execute(
                conn, "forget_expired_idempotency_key", workspace_id=workspace_id, key=key
            )
        outcome = await handle(conn)
        if outcome.created is not None:
            await _claim(conn, workspace_id, key, request_fingerprint, outcome, ttl_seconds)
        return outcome.response, False


def _replay(stored: Any) -> StoredResponse:
    return StoredResponse(
        stored["response_status"], bytes(stored["response_body"]), dict(stored["response_headers"])
    )


async def _claim(
    conn: Connection,
    workspace_id: uuid.UUID,
    key: str,
    request_fingerprint: bytes,
    outcome: Outcome,
    ttl_seconds: int,
) -> None:
    response = outcome.response
    claimed = await queries.fetchval(
        conn,
        "claim_idempotency_key",
        workspace_id=workspace_id,
        key=key,
        fingerprint=request_fingerprint,
        response_status=response.status,
        response_headers=response.headers,
        response_body=response.body,
        backfill_request_id=outcome.created,
        ttl_seconds=float(ttl_seconds),
    )
    if claimed is None:  # the key's holder committed while we locked (see the query): 409
        raise IdempotencyKeyInFlight()
