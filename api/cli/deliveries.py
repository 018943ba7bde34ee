"""`logfill deliveries ...`: a subscription's webhook deliveries, and a retry of a dead one."""

from __future__ import annotations

import argparse
from typing import Any

from api.cli.customer import Subcommands, command_group
from api.cli.output import print_page, printable, show, table
from api.client import ApiClient
from indexer.domain import DELIVERY_STATUSES


def describe_delivery(d: dict[str, Any]) -> str:
    last = d["last_status_code"] or "-"
    lines = [
        f"delivery {d['id']}  {d['status']}",
        f"  subscription {d['subscription_id']}  backfill {d['backfill_id'] or '-'}",
        f"  events       {d['event_count']} from block {d['first_block']}",
        f"  attempts     {d['attempts']}, last {d['last_attempt_at'] or '-'} (HTTP {last})",
        f"  next         {d['next_attempt_at'] if d['status'] == 'pending' else '-'}",
    ]
    if d["last_error"]:
        lines.append(f"  error        {printable(d['last_error'])}")
    return "\n".join(lines) + "\n"


async def _list(client: ApiClient, args: argparse.Namespace) -> int:
    page = await client.list_deliveries(
        args.subscription, status=args.status, limit=args.limit, after=args.after
    )
    if args.json:
        show(args, page, "")
        return 0
    rows = [
        (
            d["id"],
            d["status"],
            d["event_count"],
            d["first_block"],
            d["attempts"],
            d["last_status_code"] or "-",
            d["next_attempt_at"][:19] if d["status"] == "pending" else "-",
            d["last_error"] or "",
        )
        for d in page["items"]
    ]
    columns = ("id", "status", "events", "first block", "attempts", "HTTP", "next", "error")
    print_page(table(columns, rows), page["next"])
    return 0


async def _retry(client: ApiClient, args: argparse.Namespace) -> int:
    d = await client.retry_delivery(args.id)
    show(args, d, "pending again, from attempt one\n" + describe_delivery(d))
    return 0


def add_parser(commands: Subcommands) -> None:
    sub = command_group(commands, "deliveries", "webhook deliveries of a subscription")
    listing = sub("list", "a subscription's deliveries, newest first", _list)
    listing.add_argument("--subscription", required=True, help="subscription id")
    listing.add_argument("--status", choices=DELIVERY_STATUSES, help="only this status")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--after", help="the `next` cursor of the previous page")
    sub("retry", "send a dead delivery again", _retry).add_argument("id")
