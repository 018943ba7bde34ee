"""`logfill workspace show|set`: the caller's workspace, its plan, credits and settings."""

from __future__ import annotations

import argparse
from typing import Any

from api.cli.customer import Subcommands, UsageRefused, command_group
from api.cli.output import printable, show
from api.client import ApiClient


def describe_workspace(w: dict[str, Any]) -> str:
    limit = w["max_backfill_blocks"] or "no limit"
    backfill = f"yes, up to {limit} blocks a request" if w["backfill_enabled"] else "no"
    lines = [
        f"workspace {w['id']}  {printable(w['name'])}",
        f"  plan         {w['plan']} (backfill: {backfill}; "
        f"{w['api_requests_per_minute']} API requests a minute)",
        f"  credits      {w['credits']}",
        f"  webhooks     backfill matches {'go' if w['backfill_webhooks'] else 'do not go'} "
        "to subscriptions' webhooks",
    ]
    return "\n".join(lines) + "\n"


async def _show(client: ApiClient, args: argparse.Namespace) -> int:
    w = await client.workspace()
    show(args, w, describe_workspace(w))
    return 0


async def _set(client: ApiClient, args: argparse.Namespace) -> int:
    if args.backfill_webhooks is None:
        raise UsageRefused("nothing to change: give --backfill-webhooks or --no-backfill-webhooks")
    w = await client.update_workspace({"backfill_webhooks": args.backfill_webhooks})
    show(args, w, "updated\n" + describe_workspace(w))
    return 0


def add_parser(commands: Subcommands) -> None:
    sub = command_group(commands, "workspace", "your workspace: plan, credits, settings")
    sub("show", "the workspace of the API key", _show)
    change = sub("set", "change the workspace's settings", _set)
    change.add_argument(
        "--backfill-webhooks",
        action=argparse.BooleanOptionalAction,
        help="whether backfill matches also go to subscriptions' webhooks",
    )
