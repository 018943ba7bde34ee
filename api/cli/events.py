"""`logfill events list`: a subscription's stored events, the whole set, for analysis.

The API streams them (NDJSON or CSV) and this command writes each chunk as it
arrives, so memory stays flat whatever the number of events. `--format json`
wraps the NDJSON lines into one JSON array on the fly. Piped into `head`, it
stops quietly when the reader has had enough.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from typing import BinaryIO

from api.cli.customer import Subcommands, command_group
from api.client import ApiClient

MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv", "json": "application/x-ndjson"}


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Whole lines out of arbitrary chunks (without their newline)."""
    rest = b""
    async for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split(b"\n")
        for line in complete:
            if line:
                yield line
    if rest:
        yield rest


async def write_json_array(chunks: AsyncIterator[bytes], out: BinaryIO) -> None:
    """`[`, the lines joined by commas, `]`; nothing before the first chunk (an error)."""
    separator = b"[\n"
    async for line in lines_of(chunks):
        out.write(separator + line)
        separator = b",\n"
    out.write(b"[]\n" if separator == b"[\n" else b"\n]\n")


async def _list(client: ApiClient, args: argparse.Namespace) -> int:
    fmt = "json" if args.json else args.format
    chunks = client.export_events(
        args.subscription,
        MEDIA_TYPES[fmt],
        from_block=args.from_block,
        to_block=args.to_block,
    )
    out = sys.stdout.buffer
    try:
        if fmt == "json":
            await write_json_array(chunks, out)
        else:
            async for chunk in chunks:
                out.write(chunk)
        out.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Point stdout at /dev/null so
        # that the interpreter's last flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return 0


def add_parser(commands: Subcommands) -> None:
    sub = command_group(commands, "events", "a subscription's stored events")
    listing = sub("list", "every stored event of a subscription, in chain order, streamed", _list)
    listing.add_argument("--subscription", required=True, help="subscription id")
    listing.add_argument("--from-block", type=int, help="first block (inclusive)")
    listing.add_argument("--to-block", type=int, help="last block (inclusive)")
    listing.add_argument(
        "--format",
        choices=("json", "ndjson", "csv"),
        default="json",
        help="a JSON array (default), one JSON event per line, or CSV with a header row",
    )
