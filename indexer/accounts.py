"""Workspaces and their API keys: created, topped up and moved between plans by an
operator, who also adds, lists and revokes keys (a workspace may hold several, so
one can be replaced without downtime); read and changed by their owner through the
API; keys looked up for authentication (only a key's SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from indexer.db import queries
from indexer.db.pool import Connection
from indexer.errors import InvalidInput, NotFound

API_KEY_PREFIX = "lf_"
# What is kept of a key in the clear: "lf_" and 7 random characters, enough for an
# operator to recognise a key and far too little to guess the rest.
SHOWN_KEY_LENGTH = 10
MAX_KEY_NAME_LENGTH = 200


@dataclass(frozen=True)
class NewWorkspace:
    workspace_id: uuid.UUID
    api_key: str


@dataclass(frozen=True)
class WorkspaceSummary:
    """A workspace in the operator's list."""

    id: uuid.UUID
    name: str
    plan: str
    credits: int
    created_at: datetime
    active_keys: int


@dataclass(frozen=True)
class ApiKey:
    """A key as an operator sees it: its first characters, never the key or its hash."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str | None
    api_key: str  # shown this once; only its SHA-256 is stored
    prefix: str
    created_at: datetime


@dataclass(frozen=True)
class RevokedKey(ApiKey):
    already_revoked: bool


def generate_api_key() -> str:
    """A random key, shown once; only its SHA-256 is stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def parse_workspace_id(value: str) -> uuid.UUID:
    return _parse_id(value, "workspace id")


def parse_key_id(value: str) -> uuid.UUID:
    return _parse_id(value, "key id")


def _parse_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a UUID, got {value!r}") from None


async def _require_plan(conn: Connection, plan: str) -> None:
    if not await queries.fetchval(conn, "plan_exists", plan=plan):
        names = [r["name"] for r in await queries.fetch(conn, "list_plan_names")]
        raise InvalidInput(f"unknown plan {plan!r}; known plans: {', '.join(names)}")


async def create_workspace(conn: Connection, *, name: str, plan: str, credits: int) -> NewWorkspace:
    """Workspace, first API key and the opening ledger entry, in one transaction."""
    if not name.strip():
        raise InvalidInput("workspace name must not be empty")
    if credits < 0:
        raise InvalidInput(f"credits must be >= 0, got {credits}")
    async with conn.transaction():
        await _require_plan(conn, plan)
        row = await queries.fetchrow(
            conn, "create_workspace", name=name.strip(), plan=plan, credits=credits
        )
        assert row is not None
        key = await create_api_key(conn, row["id"])
        if credits:
            await _append_ledger(conn, row["id"], credits, credits, "initial")
    return NewWorkspace(row["id"], key.api_key)


async def list_workspaces(conn: Connection) -> list[WorkspaceSummary]:
    rows = await queries.fetch(conn, "list_workspaces")
    return [WorkspaceSummary(**row) for row in rows]


async def create_api_key(
    conn: Connection, workspace_id: uuid.UUID, *, name: str | None = None
) -> NewApiKey:
    """Another key for a workspace; the ones it has keep working."""
    api_key = generate_api_key()
    row = await queries.fetchrow(
        conn,
        "create_api_key",
        workspace_id=workspace_id,
        key_sha256=hash_api_key(api_key),
        prefix=api_key[:SHOWN_KEY_LENGTH],
        name=_key_name(name),
    )
    if row is None:
        raise NotFound(f"no workspace {workspace_id}")
    return NewApiKey(
        row["id"], workspace_id, row["name"], api_key, row["prefix"], row["created_at"]
    )


def _key_name(name: str | None) -> str | None:
    label = None if name is None else name.strip()
    if label == "":
        raise InvalidInput("key name must not be empty")
    if label is not None and len(label) > MAX_KEY_NAME_LENGTH:
        raise InvalidInput(f"key name must be at most {MAX_KEY_NAME_LENGTH} characters")
    return label


async def list_api_keys(conn: Connection, workspace_id: uuid.UUID) -> list[ApiKey]:
    """A workspace's keys, revoked ones included; an unknown workspace is an error, not []."""
    if not await queries.fetchval(conn, "workspace_exists", workspace_id=workspace_id):
        raise NotFound(f"no workspace {workspace_id}")
    rows = await queries.fetch(conn, "list_api_keys", workspace_id=workspace_id)
    return [ApiKey(**row) for row in rows]


async def revoke_api_key(
    conn: Connection, key_id: uuid.UUID, *, workspace_id: uuid.UUID | None = None
) -> RevokedKey:
    """Revoke a key (of `workspace_id` only, when given); revoking it again changes nothing.

    API processes that looked the key up lately still accept it until their cache
    entry expires (`api_key_cache_seconds`, api/auth.py).
    """
    row = await queries.fetchrow(conn, "revoke_api_key", key_id=key_id, workspace_id=workspace_id)
    if row is None:
        where = f" in workspace {workspace_id}" if workspace_id is not None else ""
        raise NotFound(f"no API key {key_id}{where}")
    return RevokedKey(**row)


async def add_credits(conn: Connection, workspace_id: uuid.UUID, amount: int) -> int:
    """Top up a workspace; returns the new balance."""
    if amount <= 0:
        raise InvalidInput(f"amount must be a positive number of credits, got {amount}")
    async with conn.transaction():
        balance: int | None = await queries.fetchval(
            conn, "add_credits", workspace_id=workspace_id, amount=amount
        )
        if balance is None:
            raise NotFound(f"no workspace {workspace_id}")
        await _append_ledger(conn, workspace_id, amount, balance, "top_up")
    return balance


async def set_plan(conn: Connection, workspace_id: uuid.UUID, plan: str) -> str:
    async with conn.transaction():
        await _require_plan(conn, plan)
        row = await queries.fetchrow(
            conn, "set_workspace_plan", workspace_id=workspace_id, plan=plan
        )
        if row is None:
            raise NotFound(f"no workspace {workspace_id}")
    return plan


async def _append_ledger(
    conn: Connection,
    workspace_id: uuid.UUID,
    delta: int,
    balance_after: int,
    reason: str,
) -> None:
    await queries.execute(
        conn,
        "append_ledger_entry",
        workspace_id=workspace_id,
        delta=delta,
        balance_after=balance_after,
        reason=reason,
        backfill_request_id=None,
        window_id=None,
        note=None,
    )


async def get_workspace(conn: Connection, workspace_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await queries.fetchrow(
        conn, "get_workspace", workspace_id=workspace_id
    )
    if row is None:
        raise NotFound(f"workspace {workspace_id} not found")
    return row


async def update_workspace(
    conn: Connection, workspace_id: uuid.UUID, *, backfill_webhooks: bool | None
) -> asyncpg.Record:
    """Change the owner's settings; fields left None keep their value."""
    if backfill_webhooks is not None:
        await queries.execute(
            conn,
            "set_backfill_webhooks",
            workspace_id=workspace_id,
            backfill_webhooks=backfill_webhooks,
        )
    return await get_workspace(conn, workspace_id)


@dataclass(frozen=True)
class KeyOwner:
    """Who an API key belongs to, and what its plan allows per minute."""

    key_id: uuid.UUID
    workspace_id: uuid.UUID
    key_sha256: bytes
    requests_per_minute: int


async def find_api_key(conn: Connection | asyncpg.Pool, digest: bytes) -> KeyOwner | None:
    """The key stored under this SHA-256, if any (the caller compares in constant time)."""
    row = await queries.fetchrow(conn, "find_api_key", key_sha256=digest)
    if row is None:
        return None
    return KeyOwner(
        row["id"], row["workspace_id"], bytes(row["key_sha256"]), row["api_requests_per_minute"]
    )
