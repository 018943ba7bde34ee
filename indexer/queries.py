"""Named SQL, kept together in `sql/queries.sql` and loaded once.

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
    text = resources.files("indexer").joinpath("sql/queries.sql").read_text("utf-8")
    return parse_queries(text)


QUERIES: Mapping[str, str] = load_queries()
