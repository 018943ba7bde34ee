"""A subscription's stored events: one page at a time, or the whole set streamed.

Both read by keyset (block, log index), in chain order or newest first,
bounded by an optional block range, and render each match as the webhook sends it
(decoded when the subscription's ABIs allow). An export reads in batches, each on a
connection taken from the pool and given back before the batch is sent, so a
slow reader holds neither a connection nor a transaction, and memory stays flat
whatever the size of the set.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from indexer.chain.logs import Log
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.domain import Order
from indexer.outbox.bodies import EventDecoder, event_body
from indexer.pagination import decode_cursor, encode_cursor
from indexer.refusals import InvalidFields
from indexer.subscriptions import require_subscription

EXPORT_BATCH = 2000
LAST_BLOCK = 2**63 - 1  # no upper bound: the largest block a bigint holds
Key = tuple[int, int]  # (block_number, log_index): the last one read
# Above every match of a block: a log index is an int4 and no log gets the largest.
# Where a newest-first read of a range starts.
BLOCK_END = 2**31 - 1
# A cursor says which way it reads, so one of a newest-first list is refused by the other.
CURSOR_KINDS: dict[Order, str] = {"asc": "events", "desc": "events_desc"}


@dataclass(frozen=True)
class BlockBounds:
    """An inclusive block range; None on a side leaves it open."""

    from_block: int | None = None
    to_block: int | None = None

    def check(self) -> None:
        if (
            self.from_block is not None
            and self.to_block is not None
            and self.from_block > self.to_block
        ):
            raise InvalidFields.one(
                "to_block",
                f"must be >= from_block ({self.from_block}), got {self.to_block}",
                parameter=True,
            )

    def start(self, after: str | None, order: Order = "asc") -> Key:
        """The key to read on from (exclusive): the cursor's, kept within the range."""
        if order == "desc":
            first: Key = (self.last, BLOCK_END)
        else:
            first = (-1, -1) if self.from_block is None else (self.from_block, -1)
        if after is None:
            return first
        key = decode_key(after, CURSOR_KINDS[order])
        return min(first, key) if order == "desc" else max(first, key)

    @property
    def first(self) -> int:
        return 0 if self.from_block is None else self.from_block

    @property
    def last(self) -> int:
        return LAST_BLOCK if self.to_block is None else self.to_block


def decode_key(after: str, kind: str) -> Key:
    """The key of a cursor; one issued before matches lost their ids (migration 0012)
    carries a third number, which no longer orders anything."""
    try:
        block, log_index = decode_cursor(after, kind, (int, int))
    except InvalidFields:
        block, log_index, _ = decode_cursor(after, kind, (int, int, int))
    return (block, log_index)


@dataclass
class EventReader:
    """Reads one subscription's events from a key on, in chain order or newest first."""

    chain_id: int
    decoder: EventDecoder
    subscription_id: uuid.UUID
    bounds: BlockBounds
    key: Key
    order: Order = "asc"

    async def read(self, conn: Connection, limit: int) -> list[asyncpg.Record]:
        read = self._read_newest_first if self.order == "desc" else self._read_in_order
        rows = await read(conn, limit)
        if rows:
            last = rows[-1]
            self.key = (last["block_number"], last["log_index"])
        return rows

    async def _read_in_order(self, conn: Connection, limit: int) -> list[asyncpg.Record]:
        block, log_index = self.key
        rows: list[asyncpg.Record] = await queries.fetch(
            conn,
            "list_subscription_events",
            subscription_id=self.subscription_id,
            chain_id=self.chain_id,
            after_block=block,
            after_log_index=log_index,
            to_block=self.bounds.last,
            limit=limit,
        )
        return rows

    async def _read_newest_first(self, conn: Connection, limit: int) -> list[asyncpg.Record]:
        block, log_index = self.key
        rows: list[asyncpg.Record] = await queries.fetch(
            conn,
            "list_subscription_events_desc",
            subscription_id=self.subscription_id,
            chain_id=self.chain_id,
            before_block=block,
            before_log_index=log_index,
            from_block=self.bounds.first,
            limit=limit,
        )
        return rows

    def cursor(self, row: asyncpg.Record) -> str:
        """The cursor of the page that follows `row`."""
        key = (row["block_number"], row["log_index"])
        return encode_cursor(CURSOR_KINDS[self.order], *key)

    def render(self, row: asyncpg.Record) -> dict[str, Any]:
        return event_item(self.chain_id, row, self.decoder)


async def open_reader(
    conn: Connection,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    bounds: BlockBounds,
    after: str | None = None,
    order: Order = "asc",
) -> EventReader:
    """A reader for the workspace's subscription (404 otherwise), checked bounds first."""
    bounds.check()
    key = bounds.start(after, order)
    owner = await require_subscription(conn, workspace_id, subscription_id)
    decoder = EventDecoder(owner["event_abis"])
    return EventReader(owner["chain_id"], decoder, subscription_id, bounds, key, order)


async def list_events(
    conn: Connection,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    *,
    limit: int,
    after: str | None,
    bounds: BlockBounds | None = None,
    order: Order = "asc",
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of stored matches and the cursor of the next (None on the last)."""
    reader = await open_reader(
        conn, workspace_id, subscription_id, bounds or BlockBounds(), after, order
    )
    rows = await reader.read(conn, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    cursor = reader.cursor(page[-1]) if more else None
    return [reader.render(row) for row in page], cursor


async def export_events(
    pool: asyncpg.Pool, reader: EventReader, batch: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every remaining event of `reader`, a batch at a time, a pooled connection per batch."""
    batch = batch or EXPORT_BATCH
    while True:
        async with pool.acquire() as conn:
            rows = await reader.read(conn, batch)
        if not rows:
            return
        yield [reader.render(row) for row in rows]
        if len(rows) < batch:
            return


async def list_removed_events(
    conn: Connection,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    *,
    limit: int,
    after: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the subscription's matches that reorgs removed, by reorg then in
    chain order, and the cursor of the next (None on the last)."""
    key = (-1, -1, -1) if after is None else decode_cursor(after, "removed", (int, int, int))
    owner = await require_subscription(conn, workspace_id, subscription_id)
    decoder = EventDecoder(owner["event_abis"])
    rows = await queries.fetch(
        conn,
        "list_removed_events",
        subscription_id=subscription_id,
        after_reorg=key[0],
        after_block=key[1],
        after_log_index=key[2],
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if more else None
    cursor = (
        None
        if last is None
        else encode_cursor("removed", last["reorg_id"], last["block_number"], last["log_index"])
    )
    items = [
        {
            **event_item(owner["chain_id"], row, decoder),
            "reorg_id": row["reorg_id"],
            "removed_at": row["removed_at"],
        }
        for row in page
    ]
    return items, cursor


def event_item(chain_id: int, row: asyncpg.Record, decoder: EventDecoder) -> dict[str, Any]:
    body = event_body(chain_id, Log.from_stored(row), decoder)
    body["backfill_id"] = row["backfill_request_id"]
    body["stored_at"] = row["created_at"]
    return body
