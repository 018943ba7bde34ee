"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from api.keys import PROBLEM_TYPE_BASE

log = structlog.get_logger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"
# Headers of aiohttp's own HTTP errors worth keeping (405 names the allowed methods).
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    problem_type: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_BASE}{problem_type}" if problem_type else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    return problem_response(exc.status, exc.reason, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn aiohttp's HTTP errors and anything unexpected into problem+json."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        return problem_response(500, "Internal Server Error", "an unexpected error occurred")
    return response
