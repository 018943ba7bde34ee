"""Named SQL, kept together in `sql/*.sql` (one file per concern) and loaded once.

A block starts with `-- name --`, then a description comment, then the query.
Python asks for a query by name: `QUERIES["create_workspace"]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into {name: sql}; a duplicate name is a bug."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        queries[name] = "\n".join(lines).strip()
    return queries


def load_queries() -> Mapping[str, str]:
    """Every named query of every file in `indexer/sql/`; names are unique across files."""
    folder = resources.files("indexer").joinpath("sql")
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    queries: dict[str, str] = {}
    for entry in files:
        for name, sql in parse_queries(entry.read_text("utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({entry.name})")
            queries[name] = sql
    return queries


QUERIES: Mapping[str, str] = load_queries()
