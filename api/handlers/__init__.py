"""The endpoints, one module per resource.

Each module exports `OPERATIONS`, its endpoints declared once (`api.routing`);
`api.app` routes and documents the concatenation. A handler parses its call,
asks one `indexer` function and renders the answer: no SQL here.
"""

from __future__ import annotations
