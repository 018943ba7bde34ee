"""Workspaces, their API keys, plans and credit top-ups (the operator's side)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from indexer.db import Connection
from indexer.errors import InvalidInput, NotFound
from indexer.queries import QUERIES

API_KEY_PREFIX = "lf_"


@dataclass(frozen=True)
class NewWorkspace:
    workspace_id: uuid.UUID
    api_key: str


def generate_api_key() -> str:
    """A random key, shown once; only its SHA-256 is stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def parse_workspace_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"workspace id must be a UUID, got {value!r}") from None


async def _require_plan(conn: Connection, plan: str) -> None:
    if not await conn.fetchval(QUERIES["plan_exists"], plan):
        names = [r["name"] for r in await conn.fetch(QUERIES["list_plan_names"])]
        raise InvalidInput(f"unknown plan {plan!r}; known plans: {', '.join(names)}")


async def create_workspace(conn: Connection, *, name: str, plan: str, credits: int) -> NewWorkspace:
    """Workspace, first API key and the opening ledger entry, in one transaction."""
    if not name.strip():
        raise InvalidInput("workspace name must not be empty")
    if credits < 0:
        raise InvalidInput(f"credits must be >= 0, got {credits}")
    api_key = generate_api_key()
    async with conn.transaction():
        await _require_plan(conn, plan)
        row = await conn.fetchrow(QUERIES["create_workspace"], name.strip(), plan, credits)
        assert row is not None
        await conn.execute(
            QUERIES["create_api_key"], row["id"], hash_api_key(api_key), api_key[:10]
        )
        if credits:
            await _append_ledger(conn, row["id"], credits, credits, "initial")
    return NewWorkspace(row["id"], api_key)


async def add_credits(conn: Connection, workspace_id: uuid.UUID, amount: int) -> int:
    """Top up a workspace; returns the new balance."""
    if amount <= 0:
        raise InvalidInput(f"amount must be a positive number of credits, got {amount}")
    async with conn.transaction():
        balance: int | None = await conn.fetchval(QUERIES["add_credits"], workspace_id, amount)
        if balance is None:
            raise NotFound(f"no workspace {workspace_id}")
        await _append_ledger(conn, workspace_id, amount, balance, "top_up")
    return balance


async def set_plan(conn: Connection, workspace_id: uuid.UUID, plan: str) -> str:
    async with conn.transaction():
        await _require_plan(conn, plan)
        row = await conn.fetchrow(QUERIES["set_workspace_plan"], workspace_id, plan)
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
    await conn.execute(
        QUERIES["append_ledger_entry"], workspace_id, delta, balance_after, reason, None, None, None
    )
