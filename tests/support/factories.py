"""Factories that insert just what a test needs, straight through SQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from indexer.chain.errors import ProviderFault
from indexer.chain.logs import Log, WireLog, parse_logs


async def make_workspace(
    conn: asyncpg.Connection, *, plan: str = "pro", credits: int = 100
) -> uuid.UUID:
    workspace_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO workspaces (name, plan, credits) VALUES ('ws', $1, $2) RETURNING id",
        plan,
        credits,
    )
    return workspace_id


async def make_subscription(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, *, chain_id: int = 1
) -> uuid.UUID:
    subscription_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO subscriptions (workspace_id, chain_id) VALUES ($1, $2) RETURNING id",
        workspace_id,
        chain_id,
    )
    return subscription_id


async def make_backfill(
    conn: asyncpg.Connection,
    subscription_id: uuid.UUID,
    **columns: Any,
) -> uuid.UUID:
    row = await conn.fetchrow(
        "SELECT workspace_id, chain_id FROM subscriptions WHERE id = $1", subscription_id
    )
    assert row is not None
    values: dict[str, Any] = {
        "workspace_id": row["workspace_id"],
        "subscription_id": subscription_id,
        "chain_id": row["chain_id"],
        "from_block": 100,
        "to_block": 200,
        "cursor": 100,
        **columns,
    }
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    backfill_id: uuid.UUID = await conn.fetchval(
        f"INSERT INTO backfill_requests ({names}) VALUES ({params}) RETURNING id",
        *values.values(),
    )
    return backfill_id


def random_log(chain_id: int = 1, block_number: int = 150, **overrides: Any) -> dict[str, Any]:
    log: dict[str, Any] = {
        "chain_id": chain_id,
        "block_number": block_number,
        "block_hash": os.urandom(32),
        "log_index": 0,
        "transaction_hash": os.urandom(32),
        "transaction_index": 0,
        "address": os.urandom(20),
        "topics": [os.urandom(32)],
        "data": b"",
    }
    log.update(overrides)
    return log


INSERT_LOG = """
INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,
                  transaction_index, address, topics, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (chain_id, block_number, log_index) DO NOTHING
RETURNING block_number
"""

INSERT_MATCH = """
INSERT INTO matches (subscription_id, block_number, log_index)
VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
RETURNING subscription_id
"""


async def insert_log(conn: asyncpg.Connection, log: dict[str, Any]) -> bool:
    """Store a log at its place on the chain; False when the place held one already."""
    return await conn.fetchval(INSERT_LOG, *log.values()) is not None


async def insert_match(
    conn: asyncpg.Connection, subscription_id: str | uuid.UUID, log: dict[str, Any]
) -> bool:
    """Store a log (if new) and a subscription's match of it; False when the match was
    stored already."""
    await insert_log(conn, log)
    stored = await conn.fetchval(
        INSERT_MATCH, uuid.UUID(str(subscription_id)), log["block_number"], log["log_index"]
    )
    return stored is not None


def parse_log(raw: Mapping[str, Any], *, from_block: int, to_block: int) -> Log:
    """One log from a JSON object (the client decodes answers with msgspec)."""
    try:
        wire = msgspec.convert(raw, WireLog)
    except msgspec.ValidationError as exc:
        raise ProviderFault(f"eth_getLogs returned a malformed log: {exc}") from exc
    return parse_logs([wire], from_block=from_block, to_block=to_block)[0]


TRANSFER_TOPIC0 = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")


async def store_transfer_matches(
    conn: asyncpg.Connection, subscription_id: str | uuid.UUID, token: str, blocks: list[int]
) -> None:
    """Stored matches as a window leaves them: one decodable ERC-20 Transfer of `token`
    per entry of `blocks` (log indexes counting up within a block), whose value is the
    entry's position."""
    seen: dict[int, int] = {}
    sender, receiver = bytes(12) + b"\x11" * 20, bytes(12) + b"\x22" * 20
    for value, block in enumerate(blocks):
        log_index = seen[block] = seen.get(block, -1) + 1
        log = random_log(
            block_number=block,
            log_index=log_index,
            address=bytes.fromhex(token[2:]),
            topics=[TRANSFER_TOPIC0, sender, receiver],
            data=value.to_bytes(32, "big"),
        )
        await insert_match(conn, subscription_id, log)
