"""`logfill demo ...`: hand the process over to `python -m demo`.

The demo is its own program (it starts PostgreSQL, anvil and `logfill run`,
then drives the API as a customer), and nothing imports it. This command only
replaces the `logfill` process with it (`os.execv`): same pid, same terminal,
so Ctrl-C and SIGTERM reach the demo exactly as before. Every argument is
passed on untouched; the demo parses them (and answers `--help`) itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn


def launch(args: argparse.Namespace) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "demo", *args.demo_args])


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole mission end to end on a local chain (make demo)",
        add_help=False,  # `logfill demo --help` is the demo's own help
        prefix_chars="\0",  # no option of ours: every argument goes to the demo as typed
    )
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    demo.set_defaults(standalone=launch)
