"""logfill's HTTP API (aiohttp) and the `logfill` command line.

The server (`app`, `handlers`, `routing`, ...) turns HTTP into calls of
`indexer` and back; `cli` starts it and the worker; `client` is the API seen
from outside, for the command line and the demo. `api` imports `indexer`,
never the reverse.
"""

from __future__ import annotations
