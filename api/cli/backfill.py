"""`logfill backfill ...`: queue and follow backfills on a running API (a client command)."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from rich.console import Console

from api.cli.customer import ClientCommand, Subcommands, command_group
from api.cli.output import labels_text, print_page, printable, show, table
from api.cli.progress import watch_backfill
from api.client import ACTIONS, ApiClient
from indexer.domain import FINISHED, ORDERS


def _removed(b: dict[str, Any]) -> str:
    """Matches a reorg removed (and refunded), when there are any."""
    removed = b.get("matches_removed") or 0
    return f", {removed} removed by reorgs and refunded" if removed else ""


def _describe_backfill(b: dict[str, Any]) -> str:
    cursor = "-" if b["cursor"] is None else b["cursor"]
    labels = labels_text(b["labels"])
    lines = [
        f"backfill {b['id']}  {b['status']}",
        f"  subscription {b['subscription_id']}  chain {b['chain_id']}",
        f"  blocks       {b['from_block']} -> {b['to_block']} ({b['order']})  cursor {cursor}",
        f"  progress     {b['progress']:.0%} ({b['blocks_scanned']}/{b['blocks_total']} blocks)",
        f"  matches      {b['matches']} (new {b['new_matches']}, "
        f"duplicates {b['duplicate_matches']}{_removed(b)})",
        f"  cost         {b['credits_charged']} credits, {b['cu_spent']} CU, "
        f"{b['windows']} windows",
        f"  labels       {labels}",
        f"  created      {b['created_at']}  finished {b['finished_at'] or '-'}",
    ]
    if b.get("estimated_start_at") or b.get("estimated_finish_at"):
        lines.append(
            f"  estimated    window start {b.get('estimated_start_at') or '-'}, "
            f"finish {b.get('estimated_finish_at') or '-'}"
        )
    lines.extend(f"  {label:<12} {text}" for label, text in trouble(b))
    return "\n".join(lines) + "\n"


def trouble(b: dict[str, Any]) -> list[tuple[str, str]]:
    """What holds a request back or ended it, in words: (label, text) lines."""
    found = []
    if b["error"]:
        found.append(("error", printable(b["error"])))
    if b.get("blocked_reason"):
        found.append(("blocked", printable(b["blocked_reason"])))
    if b.get("last_transient_error"):
        when = b.get("last_transient_error_at") or "-"
        error = printable(b["last_transient_error"])
        found.append(("provider", f"{error} (at {when}; retried each window)"))
    return found


def _block(value: str) -> int | str:
    """A block as typed: a decimal number, a 0x hex string, "safe" or "follow" (the API
    checks it)."""
    return int(value) if value.isdigit() else value


def _label(value: str) -> tuple[str, str]:
    key, sep, text = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a label is key=value, got {value!r}")
    return key, text


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"subscription_id": args.subscription, "order": args.order}
    if args.from_block is not None:
        body["from_block"] = args.from_block
    if args.to_block is not None:
        body["to_block"] = args.to_block
    if args.label:
        body["labels"] = dict(args.label)
    for flag in ("rescan", "redeliver", "dry_run"):
        if getattr(args, flag):
            body[flag] = True
    return body


async def _backfill_create(client: ApiClient, args: argparse.Namespace) -> int:
    key = None if args.dry_run else (args.idempotency_key or str(uuid.uuid4()))
    if key:
        sys.stderr.write(f"Idempotency-Key: {key} (send it again to retry safely)\n")
    created = await client.create_backfill(_create_body(args), key)
    b = created.body
    if args.dry_run:
        text = (
            f"dry run: {b['blocks']} blocks ({b['already_covered_blocks']} already covered, "
            f"{b['cached_blocks']} from the log cache), "
            f"{b['estimated_calls']} calls, {b['estimated_cu']} CU, "
            f"~{b['estimated_windows']} windows, finishing ~{b['estimated_finish_at']}\n"
        )
        if args.to_block == "follow":
            per_hour = b.get("following_cu_per_hour")
            text += (
                f"then following: ~{per_hour:,} CU an hour at the chain's recent pace\n"
                if per_hour is not None
                else "then following: CU an hour unknown until a worker has seen the chain move\n"
            )
    else:
        replay = " (replayed: this key already created it)" if created.replayed else ""
        text = f"accepted{replay}\n" + _describe_backfill(b)
    show(args, b, text)
    return 0


async def _backfill_status(client: ApiClient, args: argparse.Namespace) -> int:
    b = await client.get_backfill(args.id)
    show(args, b, _describe_backfill(b))
    return 0


async def _backfill_list(client: ApiClient, args: argparse.Namespace) -> int:
    page = await client.list_backfills(
        args.subscription, status=args.status, limit=args.limit, after=args.after
    )
    if args.json:
        show(args, page, "")
        return 0
    rows = []
    for b in page["items"]:
        notes = trouble(b)
        rows.append(
            (
                b["id"],
                b["status"],
                f"{b['from_block']}-{b['to_block']}",
                f"{b['progress']:.0%}",
                b["matches"],
                b["credits_charged"],
                b["created_at"][:19],
                f"{notes[0][0]}: {notes[0][1]}" if notes else "",
            )
        )
    columns = ("id", "status", "blocks", "progress", "matches", "credits", "created", "note")
    print_page(table(columns, rows), page["next"])
    return 0


def _backfill_action(action: str) -> ClientCommand:
    async def run(client: ApiClient, args: argparse.Namespace) -> int:
        b = await client.backfill_action(args.id, action)
        show(args, b, _describe_backfill(b))
        return 0

    return run


async def _backfill_watch(client: ApiClient, args: argparse.Namespace) -> int:
    """Exit 0 when the request completed, 1 when it failed or was cancelled."""
    b = await watch_backfill(
        client, args.id, console=Console(stderr=args.json), interval=args.interval
    )
    show(args, b, _describe_backfill(b))
    return 0 if b["status"] in FINISHED else 1


def add_parser(commands: Subcommands) -> None:
    sub = command_group(commands, "backfill", "queue and follow backfills on a running API")
    create = sub("create", "queue a backfill (or estimate one with --dry-run)", _backfill_create)
    create.add_argument("--subscription", required=True, help="subscription id")
    create.add_argument("--from", dest="from_block", type=_block, help="first block")
    create.add_argument(
        "--to",
        dest="to_block",
        type=_block,
        help='last block, "safe", or "follow" (keep following the chain)',
    )
    create.add_argument("--order", choices=ORDERS, default="asc")
    create.add_argument(
        "--label", type=_label, action="append", metavar="KEY=VALUE", help="a label (repeatable)"
    )
    create.add_argument("--idempotency-key", help="default: a fresh UUID (printed)")
    create.add_argument(
        "--rescan", action="store_true", help="scan blocks the subscription already covered"
    )
    create.add_argument(
        "--redeliver",
        action="store_true",
        help="like --rescan, and send stored matches in the range to the webhook again (free)",
    )
    create.add_argument("--dry-run", action="store_true", help="estimate only; creates nothing")
    sub("status", "a backfill's status, cursor and cost", _backfill_status).add_argument("id")
    watch = sub(
        "watch",
        "follow a backfill until it ends (plain lines when not a terminal)",
        _backfill_watch,
    )
    watch.add_argument("id")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    listing = sub("list", "a subscription's backfills, newest first", _backfill_list)
    listing.add_argument("--subscription", required=True, help="subscription id")
    listing.add_argument("--status", help="only this status")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--after", help="the `next` cursor of the previous page")
    for action in ACTIONS:
        sub(action, f"{action} a backfill", _backfill_action(action)).add_argument("id")
