"""The chain's log cache as one window uses it: blocks served from PostgreSQL, at no CU.

Every commit stores all the logs its subscriptions' filters match in the blocks it
finished, and records those blocks for each fragment of each filter
(`chain/fragments.py`, table `log_fragments`). A window loads the fragments that
may cover its subscriptions' filters; where a lead request's next blocks are
covered, it reads them from `logs` in whole-block chunks instead of calling the
provider, and commits them the way it commits answers (the chunk is marked
`cached`: its logs are not written again). Nothing is cached that was not stored
for a match, so the cache holds no log a subscription did not want.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import asyncpg

from indexer import intervals
from indexer.chain.filters import LogFilter
from indexer.chain.fragments import ANY, Fragment, covered_blocks, fragments_of
from indexer.chain.logs import Log
from indexer.chain.scanner import LogChunk
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.domain import Order
from indexer.intervals import Blocks
from indexer.window.plan import Slice

WHOLE_BLOCK = 2**31 - 1  # no limit: a block that holds more than a chunk is read whole


class LogCache:
    """The fragments that may cover a window's subscriptions, and their blocks."""

    def __init__(self, chain_id: int, filters: Mapping[uuid.UUID, LogFilter]) -> None:
        self.chain_id = chain_id
        self.fragments = {s: fragments_of(f) for s, f in filters.items()}
        self.stored: dict[Fragment, Blocks] = {}
        self._covered: dict[uuid.UUID, Blocks] = {}

    async def load(self, conn: Connection) -> None:
        addresses = sorted(
            {f.address for pieces in self.fragments.values() for f in pieces or ()} - {ANY}
        )
        rows = await queries.fetch(
            conn, "load_log_fragments", chain_id=self.chain_id, addresses=addresses
        )
        for row in rows:
            key = Fragment.from_row(row["address"], row["topics"])
            self.stored[key] = intervals.from_ranges(row["covered"])
        self._covered.clear()

    def covered(self, subscription_id: uuid.UUID) -> Blocks:
        """Blocks where every log the subscription's filter matches is stored."""
        if subscription_id not in self._covered:
            pieces = self.fragments.get(subscription_id)
            self._covered[subscription_id] = covered_blocks(pieces or (), self.stored)
        return self._covered[subscription_id]

    def add(self, subscription_id: uuid.UUID, blocks: Blocks) -> None:
        """A commit stored the subscription's logs in these blocks (as the database
        now records for its fragments)."""
        for fragment in self.fragments.get(subscription_id) or ():
            self.stored[fragment] = intervals.normalise([*self.stored.get(fragment, []), *blocks])
        self._covered.clear()

    def used_for(self, subscription_ids: set[uuid.UUID]) -> list[Fragment]:
        """The stored fragments that cover any piece of these subscriptions' filters."""
        wanted = [f for s in subscription_ids for f in self.fragments.get(s) or ()]
        return [g for g in self.stored if any(g.takes_all_of(f) for f in wanted)]

    def cached_front(self, planned: Slice, subscription_of: Mapping[uuid.UUID, uuid.UUID]) -> Slice:
        """The slice's first blocks (in its order) that the lead's filter has cached,
        each served request's part narrowed to what its own filter has cached; an
        empty-served slice when the lead's next block is not cached."""
        covered = self.covered(subscription_of[planned.lead])
        front = planned.low if planned.order == "asc" else planned.high
        run = next(((a, b) for a, b in covered if a <= front <= b), None)
        if run is None:
            return Slice(planned.low, planned.high, planned.order, planned.lead, {})
        low, high = max(run[0], planned.low), min(run[1], planned.high)
        served = {}
        for request_id, blocks in planned.served.items():
            part = intervals.overlap(
                intervals.intersect(blocks, low, high), self.covered(subscription_of[request_id])
            )
            if part:
                served[request_id] = part
        return Slice(low, high, planned.order, planned.lead, served)

    def before_cached(
        self, planned: Slice, subscription_of: Mapping[uuid.UUID, uuid.UUID]
    ) -> Slice:
        """The slice up to the lead's next cached block (it is read from the cache, not
        called for, when the lead gets there)."""
        covered = intervals.intersect(
            self.covered(subscription_of[planned.lead]), planned.low, planned.high
        )
        if not covered:
            return planned
        if planned.order == "asc":
            low, high = planned.low, covered[0][0] - 1
        else:
            low, high = covered[-1][1] + 1, planned.high
        served = {
            r: part
            for r, blocks in planned.served.items()
            if (part := intervals.intersect(blocks, low, high))
        }
        return Slice(low, high, planned.order, planned.lead, served)


def narrowing(filters: list[LogFilter]) -> tuple[list[bytes] | None, list[bytes] | None]:
    """Addresses and first topics every filter names (None: some filter takes any)."""
    addresses = None
    if all(f.addresses for f in filters):
        addresses = sorted({bytes.fromhex(a[2:]) for f in filters for a in f.addresses})
    topic0s = None
    if all(f.topic0 for f in filters):
        topic0s = sorted({bytes.fromhex(t[2:]) for f in filters for t in f.topic0 or ()})
    return addresses, topic0s


async def read_cached_chunk(
    conn: Connection,
    chain_id: int,
    low: int,
    high: int,
    order: Order,
    filters: list[LogFilter],
    max_logs: int,
) -> LogChunk:
    """The stored logs of the first whole blocks of [low, high] in scan order, at most
    `max_logs` of them unless one block holds more (then that block alone)."""
    addresses, topic0s = narrowing(filters)
    name = "read_cached_logs" if order == "asc" else "read_cached_logs_desc"

    async def read(a: int, b: int, limit: int) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await queries.fetch(
            conn,
            name,
            chain_id=chain_id,
            low=a,
            high=b,
            addresses=addresses,
            topic0s=topic0s,
            limit=limit,
        )
        return rows

    rows = await read(low, high, max_logs)
    first, last = low, high
    if len(rows) >= max_logs:  # the last block read may go on beyond the limit
        edge = rows[-1]["block_number"]
        rows = [r for r in rows if r["block_number"] != edge]
        if not rows:
            rows = await read(edge, edge, WHOLE_BLOCK)
        else:
            edge = edge - 1 if order == "asc" else edge + 1
        first, last = (low, edge) if order == "asc" else (edge, high)
    logs = [Log.from_stored(row) for row in rows]
    if order == "desc":
        logs.sort(key=lambda entry: (entry.block_number, entry.log_index))
    return LogChunk(first, last, logs, cached=True)
