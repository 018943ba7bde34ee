"""Writing deliveries: a window's new (or redelivered) matches become outbox rows.

Called inside the commit's transaction, so a match and the delivery that carries
it are committed together or not at all (see docs/architecture.md, "Invariants").
Each batch of one subscription's matches for one request becomes as many rows as
the size limits need; `webhooks/` sends them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from indexer.chain.logs import Log
from indexer.db import queries
from indexer.db.pool import Connection
from indexer.outbox.bodies import EventDecoder, event_body
from indexer.outbox.split import split_events
from indexer.settings import Settings

MATCHES = "backfill.matches"  # the matches a request found
MATCHES_REMOVED = "backfill.matches.removed"  # delivered matches a reorg orphaned


@dataclass(frozen=True)
class OutboxLimits:
    """How much one delivery may carry (events and bytes)."""

    max_events: int
    max_body_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxLimits:
        return cls(settings.webhook_max_events_per_delivery, settings.webhook_max_body_bytes)


class Batch(NamedTuple):
    """Matches of one subscription, delivered under one request, in scan order."""

    subscription_id: uuid.UUID
    workspace_id: uuid.UUID
    backfill_id: uuid.UUID | None
    decoder: EventDecoder
    logs: Sequence[Log]


class DeliveryRow(NamedTuple):
    """One outbox row, the columns of `insert_deliveries`."""

    subscription_id: uuid.UUID
    workspace_id: uuid.UUID
    backfill_request_id: uuid.UUID | None
    payload: dict[str, Any]
    event_count: int
    first_block: int


def delivery_rows(
    chain_id: int, batches: Iterable[Batch], limits: OutboxLimits, kind: str = MATCHES
) -> Iterator[DeliveryRow]:
    """The rows of `batches`, each body within the limits, events in order."""
    for batch in batches:
        envelope = {
            "type": kind,
            "subscription_id": str(batch.subscription_id),
            "backfill_id": str(batch.backfill_id) if batch.backfill_id else None,
            "chain_id": chain_id,
        }
        events = [event_body(chain_id, entry, batch.decoder) for entry in batch.logs]
        for part in split_events(events, limits.max_events, limits.max_body_bytes, envelope):
            yield DeliveryRow(
                batch.subscription_id,
                batch.workspace_id,
                batch.backfill_id,
                {**envelope, "events": part},
                len(part),
                part[0]["block_number"],
            )


async def enqueue(
    conn: Connection,
    chain_id: int,
    batches: Iterable[Batch],
    limits: OutboxLimits,
    kind: str = MATCHES,
) -> int:
    """Insert the outbox rows of `batches` (in the caller's transaction); how many."""
    rows = list(delivery_rows(chain_id, batches, limits, kind))
    if rows:
        await queries.execute(
            conn,
            "insert_deliveries",
            subscription_ids=[r.subscription_id for r in rows],
            workspace_ids=[r.workspace_id for r in rows],
            backfill_request_ids=[r.backfill_request_id for r in rows],
            payloads=[r.payload for r in rows],
            event_counts=[r.event_count for r in rows],
            first_blocks=[r.first_block for r in rows],
        )
    return len(rows)
