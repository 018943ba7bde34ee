"""The owner's dashboard: server-rendered pages over the same domain functions as /v1.

Served by `logfill api` and `logfill run` under /dashboard. Pages are Jinja2
templates (aiohttp-jinja2) that work without JavaScript; one small script of
our own (static/app.js) refreshes the live parts of a request page. An owner
signs in with an API key and gets a server-side session (`indexer.sessions`);
every state-changing form carries the session's CSRF token. Handlers call the
`indexer` functions the API's handlers call, validate with the API's pydantic
models, and so refuse exactly what the API refuses.
"""

from __future__ import annotations

from api.dashboard.site import add_dashboard

__all__ = ["add_dashboard"]
