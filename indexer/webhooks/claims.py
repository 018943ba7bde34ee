"""The delivery side of the outbox: claiming due rows under a lease, recording outcomes.

Every database call of webhook delivery is here. Claims and outcomes are two
short statements; the POST happens between them, outside any transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from indexer.db import queries
from indexer.webhooks.retry import Decision


@dataclass(frozen=True)
class ClaimedDelivery:
    """An outbox row leased to this worker, with what it takes to send it."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    lease_token: uuid.UUID
    attempt: int  # this attempt's number, 1 for the first
    payload: dict[str, Any]
    event_count: int
    created_at: datetime
    webhook_url: str | None
    secrets: list[str]  # the current secret, then the previous one during its grace period
    webhook_disabled: bool
    webhook_disabled_reason: str | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> ClaimedDelivery:
        return cls(
            id=row["id"],
            subscription_id=row["subscription_id"],
            lease_token=row["lease_token"],
            attempt=row["attempts"],
            payload=row["payload"],
            event_count=row["event_count"],
            created_at=row["created_at"],
            webhook_url=row["webhook_url"],
            secrets=list(row["secrets"]),
            webhook_disabled=row["webhook_disabled"],
            webhook_disabled_reason=row["webhook_disabled_reason"],
        )


@dataclass(frozen=True)
class Outcome:
    """A decision to record for the attempt a lease was taken for."""

    delivery: ClaimedDelivery
    decision: Decision
    status_code: int | None


async def claim_deliveries(
    pool: asyncpg.Pool,
    *,
    limit: int,
    strict_per_subscription: int,
    independent_per_subscription: int,
    lease_seconds: float,
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due rows, each subscription's by its `webhook_ordering`.

    A strict subscription's first `strict_per_subscription` pending rows (write
    order) may be in flight; an independent one's due rows may, up to
    `independent_per_subscription` at once (see `claim_deliveries` in webhooks.sql).
    """
    rows = await queries.fetch(
        pool,
        "claim_deliveries",
        limit=limit,
        strict_per_subscription=strict_per_subscription,
        independent_per_subscription=independent_per_subscription,
        lease_seconds=lease_seconds,
    )
    return [ClaimedDelivery.from_record(row) for row in rows]


async def record_outcomes(pool: asyncpg.Pool, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
    """Write outcomes in one statement; returns the ids whose lease was still ours."""
    rows = await queries.fetch(
        pool,
        "record_delivery_outcomes",
        ids=[o.delivery.id for o in outcomes],
        lease_tokens=[o.delivery.lease_token for o in outcomes],
        statuses=[o.decision.status for o in outcomes],
        retry_ins=[o.decision.retry_in for o in outcomes],
        status_codes=[o.status_code for o in outcomes],
        errors=[o.decision.error for o in outcomes],
        disable_reasons=[o.decision.disable_reason for o in outcomes],
    )
    return {row["id"] for row in rows}
