"""What every customer's command shares: the API's URL and key, and one-line errors.

The customer's commands (`backfill`, `subscriptions`, `events`, `deliveries`,
`workspace`) are clients of a running API: they need only its URL and a
workspace's key, talk HTTP through `api.client` like any other client, and load
no settings and open no database. An API refusal is one line on stderr and exit
code 1; a missing key, or a command refused before any call, exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from api.client import ApiClient, ApiError

DEFAULT_API_URL = "http://127.0.0.1:8080"
ClientCommand = Callable[[ApiClient, argparse.Namespace], Awaitable[int]]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageRefused(Exception):
    """A command refused before any call (exit code 2), e.g. a delete without --yes."""


def client_options() -> argparse.ArgumentParser:
    """--api-url, --api-key and --json, as a parent of every customer's command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url",
        default=os.environ.get("LOGFILL_API_URL", DEFAULT_API_URL),
        help="the API (default: LOGFILL_API_URL or %(default)s)",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("LOGFILL_API_KEY"),
        help="the workspace's API key (default: LOGFILL_API_KEY)",
    )
    common.add_argument("--json", action="store_true", help="print the JSON answer")
    return common


def client_command(action: ClientCommand) -> Callable[[argparse.Namespace], int]:
    """Run `action` with an ApiClient; an API refusal is one line on stderr and exit 1."""

    def command(args: argparse.Namespace) -> int:
        if not args.api_key:
            sys.stderr.write("logfill: no API key: pass --api-key or set LOGFILL_API_KEY\n")
            return 2

        async def work() -> int:
            async with ApiClient(args.api_url, args.api_key) as client:
                return await action(client, args)

        try:
            return asyncio.run(work())
        except ApiError as exc:
            sys.stderr.write(f"logfill: {exc}\n")
            return 1
        except UsageRefused as exc:
            sys.stderr.write(f"logfill: {exc}\n")
            return 2

    return command


def command_group(
    commands: Subcommands, name: str, help_text: str
) -> Callable[[str, str, ClientCommand], argparse.ArgumentParser]:
    """`logfill NAME ACTION ...`; returns a function that adds one action."""
    group = commands.add_parser(name, help=help_text, description=help_text)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = client_options()

    def action(verb: str, text: str, run: ClientCommand) -> argparse.ArgumentParser:
        parser = actions.add_parser(verb, help=text, description=text, parents=[common])
        parser.set_defaults(standalone=client_command(run))
        return parser

    return action
