"""Database rows -> response models (the one place that knows both shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from eth_utils.address import to_checksum_address

from api.models import Backfill, Delivery, Subscription, SubscriptionWithSecret
from indexer.backfills import progress
from indexer.domain import ESTIMATED

Row = asyncpg.Record | Mapping[str, Any]


def subscription(row: Row, *, secret: bool = False) -> Subscription:
    fields = {
        "id": row["id"],
        "chain_id": row["chain_id"],
        "name": row["name"],
        "addresses": [to_checksum_address(a) for a in row["addresses"]],
        "topics": row["topics"],
        "events": row["events"],
        "webhook_url": row["webhook_url"],
        "webhook_disabled_at": row["webhook_disabled_at"],
        "webhook_disabled_reason": row["webhook_disabled_reason"],
        "webhook_ordering": row["webhook_ordering"],
        "stored_events": row["stored_events"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if secret:
        return SubscriptionWithSecret(**fields, webhook_secret=row["webhook_secret"])
    return Subscription(**fields)


def backfill(row: Row) -> Backfill:
    estimated = row["status"] in ESTIMATED  # a request that cannot run has no estimates
    return Backfill(
        id=row["id"],
        subscription_id=row["subscription_id"],
        chain_id=row["chain_id"],
        status=row["status"],
        from_block=row["from_block"],
        to_block=row["to_block"],
        order=row["block_order"],
        cursor=row["cursor"],
        follow=row["follow"],
        lag_blocks=row["lag_blocks"],
        lag_seconds=row["lag_seconds"],
        progress=progress(row),
        blocks_scanned=row["blocks_scanned"],
        blocks_total=row["to_block"] - row["from_block"] + 1,
        matches=row["matches"],
        new_matches=row["new_matches"],
        duplicate_matches=row["duplicate_matches"],
        matches_removed=row["matches_removed"],
        credits_charged=row["credits_charged"],
        cu_spent=row["cu_spent"],
        windows=row["windows"],
        rescan=row["rescan"],
        redeliver=row["redeliver"],
        labels=row["labels"],
        estimated_start_at=row["estimated_start_at"] if estimated else None,
        estimated_finish_at=row["estimated_finish_at"] if estimated else None,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        error=row["error"],
        last_transient_error=row["last_transient_error"],
        last_transient_error_at=row["last_transient_error_at"],
        blocked_reason=row["blocked_reason"],
    )


def delivery(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        subscription_id=row["subscription_id"],
        backfill_id=row["backfill_request_id"],
        status=row["status"],
        event_count=row["event_count"],
        first_block=row["first_block"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
    )
