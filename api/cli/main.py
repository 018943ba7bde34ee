"""The `logfill` parser and dispatch.

Two kinds of command. The service's and the operator's get the settings
(LOGFILL_* variables or .env) and report a `LogfillError` as one line on
stderr with its exit code. The `standalone` ones are called with their
arguments only: the customer's commands (`backfill`, `subscriptions`, `events`,
`deliveries`, `workspace`) are clients of a running API and need no settings,
and `demo` hands over to the demo program, which loads its own.
"""

from __future__ import annotations

import argparse
import sys

from api.cli import admin, backfill, deliveries, demo, events, serve, subscriptions, workspace
from indexer.errors import LogfillError
from indexer.logging import configure_logging
from indexer.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logfill",
        description="Blockchain event-log backfill service. Settings come from LOGFILL_* "
        "environment variables or a .env file (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parsers(commands)
    admin.add_parser(commands)
    backfill.add_parser(commands)
    subscriptions.add_parser(commands)
    events.add_parser(commands)
    deliveries.add_parser(commands)
    workspace.add_parser(commands)
    demo.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "standalone", None) is not None:
        raise SystemExit(args.standalone(args))
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        code = args.func(settings, args)
    except LogfillError as exc:
        sys.stderr.write(f"logfill: {exc}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
