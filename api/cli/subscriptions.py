"""`logfill subscriptions ...`: a workspace's subscriptions on a running API.

The webhook secret is printed when the API shows it (create, a first webhook
URL, rotation) and never again, with a note on stderr saying so.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from api.cli.customer import Subcommands, UsageRefused, command_group
from api.cli.output import print_page, printable, show, table
from api.client import ApiClient

ORDERINGS = ("independent", "strict")


def describe_subscription(s: dict[str, Any]) -> str:
    topics = orjson.dumps(s["topics"]).decode() if s["topics"] else "-"
    webhook = printable(s["webhook_url"])
    if s["webhook_url"]:
        webhook += f" ({s['webhook_ordering']})"
    if s.get("webhook_disabled_at"):
        webhook += (
            f"  DISABLED {s['webhook_disabled_at']}: {printable(s['webhook_disabled_reason'])}"
        )
    lines = [
        f"subscription {s['id']}  {printable(s['name'])}",
        f"  chain        {s['chain_id']}",
        f"  addresses    {', '.join(s['addresses']) or 'any'}",
        f"  events       {'; '.join(printable(e) for e in s['events']) or 'any'}",
        f"  topics       {printable(topics)}",
        f"  webhook      {webhook}",
        f"  stored       {'yes' if s['stored_events'] else 'no (webhook only)'}",
        f"  created      {s['created_at']}  updated {s['updated_at']}",
    ]
    if s.get("webhook_secret"):
        lines.append(f"  secret       {s['webhook_secret']}")
    return "\n".join(lines) + "\n"


def _secret_note(s: dict[str, Any]) -> None:
    if s.get("webhook_secret"):
        sys.stderr.write("The webhook secret is shown now only: keep it to verify signatures.\n")


def _topics(text: str) -> list[Any]:
    try:
        topics = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"topics is a JSON array such as '[null, [\"0x...\"]]', got {text!r}"
        ) from None
    if not isinstance(topics, list):
        raise argparse.ArgumentTypeError(f"topics is a JSON array, got {text!r}")
    return topics


def _filter_fields(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.address is not None:
        body["addresses"] = args.address
    if args.event is not None:
        body["events"] = args.event
    if args.topics is not None:
        body["topics"] = args.topics
    if args.webhook_ordering is not None:
        body["webhook_ordering"] = args.webhook_ordering
    if args.stored_events is not None:
        body["stored_events"] = args.stored_events
    return body


async def _create(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"chain_id": args.chain_id, **_filter_fields(args)}
    if args.name is not None:
        body["name"] = args.name
    if args.webhook_url is not None:
        body["webhook_url"] = args.webhook_url
    created = await client.create_subscription(body)
    _secret_note(created)
    show(args, created, "created\n" + describe_subscription(created))
    return 0


async def _list(client: ApiClient, args: argparse.Namespace) -> int:
    page = await client.list_subscriptions(limit=args.limit, after=args.after)
    if args.json:
        show(args, page, "")
        return 0
    rows = [
        (
            s["id"],
            s["name"],
            s["chain_id"],
            ", ".join(s["addresses"]) or "any",
            len(s["events"]) or "any",
            s["webhook_url"] if not s["webhook_disabled_at"] else f"DISABLED {s['webhook_url']}",
            s["created_at"][:19],
        )
        for s in page["items"]
    ]
    columns = ("id", "name", "chain", "addresses", "events", "webhook", "created")
    print_page(table(columns, rows), page["next"])
    return 0


async def _show(client: ApiClient, args: argparse.Namespace) -> int:
    s = await client.get_subscription(args.id)
    show(args, s, describe_subscription(s))
    return 0


async def _update(client: ApiClient, args: argparse.Namespace) -> int:
    body = _filter_fields(args)
    if args.name is not None:
        body["name"] = args.name or None
    if args.remove_webhook:
        body["webhook_url"] = None
    elif args.webhook_url is not None:
        body["webhook_url"] = args.webhook_url
    if not body:
        raise UsageRefused("nothing to change: give at least one option (see --help)")
    updated = await client.update_subscription(args.id, body)
    _secret_note(updated)
    show(args, updated, "updated\n" + describe_subscription(updated))
    return 0


async def _delete(client: ApiClient, args: argparse.Namespace) -> int:
    if not args.yes:
        raise UsageRefused(
            "deleting a subscription deletes its backfills, stored events and deliveries: "
            "add --yes to confirm"
        )
    await client.delete_subscription(args.id)
    show(args, {"id": args.id, "deleted": True}, f"deleted subscription {args.id}\n")
    return 0


async def _rotate(client: ApiClient, args: argparse.Namespace) -> int:
    rotated = await client.rotate_webhook_secret(args.id)
    _secret_note(rotated)
    sys.stderr.write("The previous secret still signs for the grace period.\n")
    show(args, rotated, describe_subscription(rotated))
    return 0


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", action="append", metavar="0x...", help="a contract address (repeatable)"
    )
    parser.add_argument(
        "--event",
        action="append",
        metavar="SIGNATURE",
        help='an event, e.g. "Transfer(address indexed from, address indexed to, uint256 value)"'
        " (repeatable; sets topic0 and decodes)",
    )
    parser.add_argument(
        "--topics", type=_topics, metavar="JSON", help="positional topics, e.g. '[null, \"0x...\"]'"
    )
    parser.add_argument("--webhook-ordering", choices=ORDERINGS)
    parser.add_argument(
        "--stored-events",
        action=argparse.BooleanOptionalAction,
        help="store matches (default yes); --no-stored-events sends them to the webhook only",
    )


def add_parser(commands: Subcommands) -> None:
    sub = command_group(commands, "subscriptions", "a workspace's subscriptions")
    create = sub("create", "create a subscription (prints the webhook secret once)", _create)
    create.add_argument("--chain-id", type=int, required=True, help="the chain's id")
    create.add_argument("--name", help="a name for people")
    create.add_argument("--webhook-url", help="https URL that receives matches")
    _filter_options(create)
    listing = sub("list", "the workspace's subscriptions, oldest first", _list)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--after", help="the `next` cursor of the previous page")
    sub("show", "one subscription", _show).add_argument("id")
    update = sub("update", "change a subscription (given options only)", _update)
    update.add_argument("id")
    update.add_argument("--name", help='a new name ("" clears it)')
    hook = update.add_mutually_exclusive_group()
    hook.add_argument("--webhook-url", help="a new webhook URL (a first one prints a secret)")
    hook.add_argument(
        "--remove-webhook", action="store_true", help="no webhook: drop the URL and its secrets"
    )
    _filter_options(update)
    delete = sub("delete", "delete a subscription with its history", _delete)
    delete.add_argument("id")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    rotate_help = "a new webhook secret (the old one signs for a grace period)"
    sub("rotate-secret", rotate_help, _rotate).add_argument("id")
