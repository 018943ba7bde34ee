"""Paying for new matches: one credit each, in scan order, never below zero.

Pure policy here; the debits and the ledger lines are written by the commit
(`store.commit`) in the same transaction as the matches they pay for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

from indexer.db import queries
from indexer.db.pool import Connection
from indexer.store.chunk import Charge


def paid_cutoff(new_matches: Sequence[tuple[int, int]], balance: int) -> tuple[int, int | None]:
    """How many of a workspace's new matches it can pay, and the first unpaid block.

    `new_matches` are (block, log_index) in scan order. Matches are paid in that
    order up to `balance`; the scan of that workspace stops at the block of the
    first unpaid match (None: all paid), which is scanned again after a top-up.
    """
    if len(new_matches) <= balance:
        return len(new_matches), None
    return balance, new_matches[balance][0]


async def lock_balances(
    conn: Connection, workspace_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The workspaces' balances, locked (in id order, so leaders of two chains never
    deadlock) until the commit ends."""
    rows = await queries.fetch(conn, "lock_workspaces", workspace_ids=list(workspace_ids))
    return {row["id"]: row["credits"] for row in rows}


async def debit(
    conn: Connection,
    charges: Mapping[uuid.UUID, Charge],
    *,
    window_id: int,
    note: str,
) -> None:
    """One credit per stored new match, with a ledger line per workspace (naming the
    request of its first match)."""
    for workspace_id, (count, request_id) in charges.items():
        if not count:
            continue
        balance = await queries.fetchval(
            conn, "charge_credits", workspace_id=workspace_id, credits=count
        )
        await queries.execute(
            conn,
            "append_ledger_entry",
            workspace_id=workspace_id,
            delta=-count,
            balance_after=balance,
            reason="backfill_matches",
            backfill_request_id=request_id,
            window_id=window_id,
            note=note,
        )
