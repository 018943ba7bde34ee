"""Splitting a batch of events into deliveries that fit the size limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from indexer.outbox.bodies import delivery_body

# The body without its events, as large as it gets: two uuids and a 64-bit chain id.
_LARGEST_ENVELOPE = {
    "type": "backfill.matches",
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "backfill_id": "00000000-0000-0000-0000-000000000000",
    "chain_id": 2**63 - 1,
    "events": [],
}


def split_events(
    events: Sequence[Mapping[str, Any]],
    max_events: int,
    max_body_bytes: int,
    envelope: Mapping[str, Any] | None = None,
) -> list[list[Mapping[str, Any]]]:
    """Consecutive batches of `events`, each a delivery whose body fits `max_body_bytes`.

    Each batch holds at most `max_events` events; none is empty; order is kept. An
    event too large to fit even alone goes out alone: a receiver that cannot take
    it will say so, which is better than losing it here. `envelope` is the body
    without events (`events` key ignored); without it the largest possible one is
    assumed, so the limit holds whatever ids the body gets.
    """
    overhead = len(delivery_body({**(envelope or _LARGEST_ENVELOPE), "events": []}))
    batches: list[list[Mapping[str, Any]]] = []
    batch: list[Mapping[str, Any]] = []
    size = overhead
    for event in events:
        event_bytes = len(orjson.dumps(event)) + (1 if batch else 0)  # the comma
        if batch and (len(batch) == max_events or size + event_bytes > max_body_bytes):
            batches.append(batch)
            batch, size, event_bytes = [], overhead, event_bytes - 1
        batch.append(event)
        size += event_bytes
    if batch:
        batches.append(batch)
    return batches
