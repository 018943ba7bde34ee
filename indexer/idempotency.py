"""Idempotency-Key for POST requests (IETF httpapi draft, Stripe semantics).

A key belongs to a workspace. The key is claimed, with the response it got, in
the very transaction that creates the request: either both exist or neither
does, and the key's primary key lets one request claim it. Later requests with
the key get that response again (same body: replayed; another body: refused).
A request arriving while another transaction holds the key's advisory lock gets
409 at once rather than waiting, and so does one whose claim finds the key taken
after all (it raced another request with the key). Only responses that created
something are stored: a refusal (4xx) or a dry run leaves the key unused, so the
client can fix the problem and retry with the same key. Keys expire after
`idempotency_ttl_seconds`; an expired key counts as unused (claimed again, with
a new lifetime, in the creating transaction).

Two ways to run a request once: `run_once` in a transaction that holds the key's
advisory lock throughout (the dashboard's form), and `accept_once`, two
statements and no transaction (the API's POST /v1/backfill, where each round
trip counts): one reads the key's record, trying the lock, with the handler's
context; the other creates the request and claims the key (`Claim`).
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


@dataclass(frozen=True)
class Claim:
    """A free key, to be claimed with `response` by the statement that creates what
    the response names (`insert_backfill_claiming_key`); that statement creates
    nothing, and the request is refused as in flight, if the key is taken by then."""

    key: str
    fingerprint: bytes
    ttl_seconds: int

    def columns(self, response: StoredResponse) -> dict[str, Any]:
        """The claim's parameters of the creating statement."""
        return {
            "key": self.key,
            "fingerprint": self.fingerprint,
            "response_status": response.status,
            "response_headers": response.headers,
            "response_body": response.body,
            "ttl_seconds": float(self.ttl_seconds),
        }


Create = Callable[[Connection, Claim | None], Awaitable[Outcome]]


def stored_response(found: Any, request_fingerprint: bytes) -> StoredResponse | None:
    """What a key's record (the columns of `lock_and_find_idempotency_key`) answers: the
    stored response to replay, None when the key is free, or a refusal (another body:
    422; held by a request still being handled: 409)."""
    stored = found if found["fingerprint"] is not None else None
    if stored is not None and not stored["expired"]:
        if stored["fingerprint"] != request_fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with another request body; "
                "use a new key for a new request"
            )
        if stored["response_status"] is None:
            raise IdempotencyKeyInFlight()
        return _replay(stored)
    if not found["locked"]:
        raise IdempotencyKeyInFlight()
    return None


async def accept_once(
    conn: Connection,
    key: str | None,
    request_fingerprint: bytes,
    *,
    ttl_seconds: int,
    lookup: Lookup,
    handle: Create,
) -> tuple[StoredResponse, bool]:
    """Handle a request at most once per key, outside any transaction; returns the
    response and whether it is a replay.

    `lookup` reads, in one statement, what the handler needs and with a key the key's
    record as `lock_and_find_idempotency_key` does (its columns, trying the same lock).
    `handle` gets the `Claim` of a free key (None without a key) and must make it in
    the statement that creates what it answers, raising `IdempotencyKeyInFlight` when
    that statement found the key taken; a handler that creates nothing ignores it."""
    found = await lookup(conn)
    claim = None
    if key is not None:
        stored = stored_response(found, request_fingerprint)
        if stored is not None:
            return stored, True
        claim = Claim(key, request_fingerprint, ttl_seconds)
    return (await handle(conn, claim)).response, False


async def run_once(
    conn: Connection,
    workspace_id: uuid.UUID,
    key: str | None,
    request_fingerprint: bytes,
    *,
    ttl_seconds: int,
    handle: Handle,
) -> tuple[StoredResponse, bool]:
    """Handle a request at most once per key in one transaction that holds the key's
    advisory lock; returns the response and whether it is a replay."""
    async with conn.transaction():
        if key is None:
            return (await handle(conn)).response, False
        found = await queries.fetchrow(
            conn, "lock_and_find_idempotency_key", workspace_id=workspace_id, key=key
        )
        assert found is not None
        stored = stored_response(found, request_fingerprint)
        if stored is not None:
            return stored, True
        if found["fingerprint"] is not None:  # an expired record
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
