"""The `logfill` command: one module per command group, `main` parses and dispatches.

It lives in `api/` because it is the one place that starts both the API and
the worker (`api` may import `indexer`, never the reverse). `main` is
re-exported here for the console script (`logfill = "api.cli:main"`).
"""

from __future__ import annotations

from api.cli.main import main

__all__ = ["main"]
