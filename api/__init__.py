"""logfill HTTP API (aiohttp) and the `logfill` command line."""
