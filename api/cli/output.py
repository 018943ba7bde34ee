"""How the customer's commands print: JSON for scripts, words and tables for people.

Everything a user (or a provider) wrote, such as labels, names, URLs and error
texts, goes through `printable` before it reaches a terminal, so a label
holding an escape sequence or a right-to-left override shows as `\\x1b[2J` or
`\\u202e` instead of clearing the screen or reordering the line. Tables take
that text as rich `Text`, never as markup, so `[red]` in a name stays `[red]`.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control, format (bidi overrides, zero-width), line and paragraph separators.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp"})
TABLE_WIDTH = 160


def printable(value: object) -> str:
    """`value` as text with every control or format character escaped."""
    text = "-" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if unicodedata.category(ch) not in _UNSAFE:
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def labels_text(labels: Mapping[str, Any]) -> str:
    return ", ".join(f"{printable(k)}={printable(v)}" for k, v in labels.items()) or "-"


def dump_json(body: object) -> str:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"


def show(args: argparse.Namespace, body: object, text: str) -> None:
    """The JSON answer with --json, the words otherwise."""
    sys.stdout.write(dump_json(body) if args.json else text)
    sys.stdout.flush()


def table(columns: Iterable[str], rows: Iterable[Iterable[object]]) -> Table:
    """A table whose cells are plain text (escaped), never rich markup; a long value
    (an id, an address) wraps inside its cell rather than being cut short."""
    grid = Table(
        *(Column(name, overflow="fold", min_width=_width(name)) for name in columns),
        box=box.SIMPLE_HEAD,
    )
    for row in rows:
        grid.add_row(*(Text(printable(cell)) for cell in row))
    return grid


def _width(column: str) -> int | None:
    return 36 if column == "id" else None


def print_page(grid: Table, next_cursor: str | None) -> None:
    """A table of one page, and how to ask for the next."""
    console = Console(width=TABLE_WIDTH, highlight=False)
    console.print(grid if grid.row_count else Text("(none)"))
    if next_cursor:
        console.print(Text(f"more: --after {next_cursor}"))
