"""Named SQL, kept together in `sql/*.sql` (one file per concept) and loaded once.

A block starts with a header naming the query and its parameters in `$n` order,
`-- record_window(window_id, cu_spent, ...) --` (just `-- name --` when it takes
none), then a description comment, then the query. Python calls a query by name
with keywords, which are bound to `$1, $2, ...` here:

    await queries.execute(conn, "save_heads", chain_id=1, head=120, safe_head=108)

A missing or unknown keyword is a bug and raises TypeError before anything is
sent. Names are unique across files; every `$n` a query uses is declared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from indexer.db.pool import Connection

_HEADER = re.compile(r"^-- ([a-z0-9_]+)(?:\(([a-z0-9_, ]*)\))? --$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\$(\d+)")
Executor = Connection | asyncpg.Pool


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    params: tuple[str, ...]  # the names of $1, $2, ...

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The keyword values in `$n` order; TypeError naming what is missing or unknown."""
        if values.keys() != set(self.params):
            missing = [p for p in self.params if p not in values]
            unknown = sorted(set(values) - set(self.params))
            raise TypeError(f"query {self.name}: missing {missing}, unknown {unknown}")
        return tuple(values[name] for name in self.params)


def parse_queries(text: str) -> dict[str, Query]:
    """Split a queries file into {name: Query}; a duplicate or undeclared parameter is a bug."""
    parts = _HEADER.split(text)
    queries: dict[str, Query] = {}
    for name, declared, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        sql = "\n".join(lines).strip()
        params = tuple(p.strip() for p in (declared or "").split(",") if p.strip())
        used = {int(n) for n in _PLACEHOLDER.findall(sql)}
        if used != set(range(1, len(params) + 1)) or len(set(params)) != len(params):
            raise ValueError(f"query {name!r} declares {params} but uses ${sorted(used)}")
        queries[name] = Query(name, sql, params)
    return queries


def load_queries() -> Mapping[str, Query]:
    """Every named query of every file in `indexer/db/sql/`; names are unique across files."""
    folder = resources.files("indexer.db").joinpath("sql")
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    queries: dict[str, Query] = {}
    for entry in files:
        for name, query in parse_queries(entry.read_text("utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({entry.name})")
            queries[name] = query
    return queries


QUERIES: Mapping[str, Query] = load_queries()


def sql(name: str) -> str:
    """The text of a query, for asyncpg calls made outside these helpers (COPY set-up)."""
    return QUERIES[name].sql


async def execute(conn: Executor, name: str, /, **params: Any) -> str:
    query = QUERIES[name]
    status: str = await conn.execute(query.sql, *query.args(params))
    return status


async def fetch(conn: Executor, name: str, /, **params: Any) -> list[asyncpg.Record]:
    query = QUERIES[name]
    rows: list[asyncpg.Record] = await conn.fetch(query.sql, *query.args(params))
    return rows


async def fetchrow(conn: Executor, name: str, /, **params: Any) -> asyncpg.Record | None:
    query = QUERIES[name]
    row: asyncpg.Record | None = await conn.fetchrow(query.sql, *query.args(params))
    return row


async def fetchval(conn: Executor, name: str, /, **params: Any) -> Any:
    query = QUERIES[name]
    return await conn.fetchval(query.sql, *query.args(params))
