"""The demo's story, told through the HTTP API exactly as a customer would.

A subscription to the token's Transfer events with a webhook, a dry run, a
backfill with an Idempotency-Key, the same POST again (deduplicated), a live
progress bar until the request completes, then the figures. Each step checks
what it shows and raises `StoryError` when the service does not do its part.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from rich.console import Console

from api.cli.progress import watch_backfill
from api.client import JSON, ApiClient
from demo.chain import CHAIN_ID
from demo.receiver import WebhookReceiver
from indexer.errors import LogfillError

TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"


class StoryError(LogfillError):
    """A step of the demo did not turn out as it should."""


@dataclass(frozen=True)
class Plan:
    """What the demo asks for."""

    token: str
    from_block: int
    to_block: int
    transfers: int  # Transfer events of the token in the range, as the node reports them
    request_timeout: float = 120.0
    webhook_timeout: float = 60.0


@dataclass(frozen=True)
class Summary:
    subscription_id: str
    backfill_id: str
    replay_id: str
    replayed: bool
    status: str
    blocks: int
    transfers_on_chain: int
    matches_stored: int
    new_matches: int
    credits_charged: int
    credits_before: int
    credits_after: int
    cu_spent: int
    cu_estimated: int
    windows: int
    webhook_deliveries: int
    webhook_verified: int
    webhook_rejected: int
    webhook_events: int
    seconds: float


async def create_subscription(api: ApiClient, plan: Plan, receiver: WebhookReceiver) -> JSON:
    subscription = await api.create_subscription(
        {
            "chain_id": CHAIN_ID,
            "name": "DemoToken transfers",
            "addresses": [plan.token],
            "events": [TRANSFER],
            "webhook_url": receiver.url,
        }
    )
    receiver.secret = subscription["webhook_secret"]
    return subscription


async def create_twice(api: ApiClient, body: JSON, console: Console) -> tuple[JSON, JSON, bool]:
    """POST the backfill, then the very same POST again: the second is a replay."""
    key = str(uuid.uuid4())
    first = await api.create_backfill(body, key)
    if first.status != 202:
        raise StoryError(f"POST /v1/backfill answered {first.status}, expected 202")
    console.print(f"   POST /v1/backfill (Idempotency-Key {key}) -> 202, id {first.body['id']}")
    again = await api.create_backfill(body, key)
    console.print(
        f"   the same POST again -> {again.status}, id {again.body['id']}, "
        f"Idempotent-Replayed: {str(again.replayed).lower()}"
    )
    if again.body["id"] != first.body["id"] or not again.replayed:
        raise StoryError("the repeated POST was not deduplicated")
    return first.body, again.body, again.replayed


async def tell(
    api: ApiClient, plan: Plan, receiver: WebhookReceiver, console: Console
) -> tuple[JSON, JSON, bool, int, int]:
    """Subscription, dry run, backfill twice, progress; (request, replay, replayed,
    credits before, CU estimated)."""
    workspace = await api.workspace()
    console.print(
        f"[bold]1.[/] workspace {workspace['name']!r}: plan {workspace['plan']}, "
        f"{workspace['credits']} credits"
    )
    subscription = await create_subscription(api, plan, receiver)
    console.print(
        f"[bold]2.[/] subscription {subscription['id']}: {TRANSFER} on {plan.token}, "
        f"webhook {receiver.url}"
    )
    body: JSON = {
        "subscription_id": subscription["id"],
        "from_block": plan.from_block,
        "to_block": plan.to_block,
        "labels": {"source": "logfill-demo"},
    }
    estimate = (await api.create_backfill({**body, "dry_run": True})).body
    console.print(
        f"[bold]3.[/] dry run: {estimate['blocks']} blocks, {estimate['estimated_calls']} "
        f"calls, {estimate['estimated_cu']} CU, ~{estimate['estimated_windows']} windows"
    )
    console.print("[bold]4.[/] backfill with an Idempotency-Key, sent twice")
    first, replay, replayed = await create_twice(api, body, console)
    console.print("[bold]5.[/] progress")
    done = await watch_backfill(
        api, first["id"], console=console, interval=0.3, timeout=plan.request_timeout
    )
    if done["status"] != "completed":
        raise StoryError(f"the request ended {done['status']}: {done['error']}")
    return done, replay, replayed, int(workspace["credits"]), int(estimate["estimated_cu"])


async def run_story(
    api: ApiClient, plan: Plan, receiver: WebhookReceiver, console: Console
) -> Summary:
    """The whole story; its figures, read back from the API and the receiver."""
    started = time.monotonic()
    done, replay, replayed, credits_before, cu_estimated = await tell(api, plan, receiver, console)
    console.print("[bold]6.[/] waiting for the webhook deliveries")
    if not await receiver.wait_for_events(int(done["new_matches"]), plan.webhook_timeout):
        raise StoryError(
            f"the receiver got {receiver.events} of {done['new_matches']} events in time"
        )
    workspace = await api.workspace()
    return Summary(
        subscription_id=str(done["subscription_id"]),
        backfill_id=str(done["id"]),
        replay_id=str(replay["id"]),
        replayed=replayed,
        status=str(done["status"]),
        blocks=int(done["blocks_total"]),
        transfers_on_chain=plan.transfers,
        matches_stored=await api.count_events(str(done["subscription_id"])),
        new_matches=int(done["new_matches"]),
        credits_charged=int(done["credits_charged"]),
        credits_before=credits_before,
        credits_after=int(workspace["credits"]),
        cu_spent=int(done["cu_spent"]),
        cu_estimated=cu_estimated,
        windows=int(done["windows"]),
        webhook_deliveries=receiver.deliveries,
        webhook_verified=receiver.verified,
        webhook_rejected=receiver.rejected,
        webhook_events=receiver.events,
        seconds=time.monotonic() - started,
    )


def check_summary(summary: Summary) -> list[str]:
    """What in the figures is not as it must be (empty when all is well)."""
    problems = []
    if summary.matches_stored != summary.transfers_on_chain:
        problems.append(
            f"{summary.matches_stored} matches stored, "
            f"{summary.transfers_on_chain} transfers on chain"
        )
    if summary.credits_charged != summary.new_matches:
        problems.append(
            f"{summary.credits_charged} credits charged for {summary.new_matches} new matches"
        )
    if summary.credits_before - summary.credits_after != summary.credits_charged:
        problems.append("the balance did not go down by the credits charged")
    if summary.webhook_rejected or summary.webhook_events != summary.new_matches:
        problems.append(
            f"{summary.webhook_events} webhook events verified of "
            f"{summary.new_matches}, {summary.webhook_rejected} rejected"
        )
    return problems
