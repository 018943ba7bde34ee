"""RFC 9457 problem details: every error the API returns has this shape.

`problem_middleware` is the one place where errors become responses: refusals
from the domain (`indexer.refusals`, `NotFound`), problems raised by the API
itself (`Problem`), aiohttp's own HTTP errors (404, 405, 413), a database that
went away (503), and anything unexpected (500, logged, never shown).
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from indexer.db.pool import UNAVAILABLE_ERRORS
from indexer.errors import InvalidInput, LogfillError, NotFound
from indexer.refusals import Conflict, IdempotencyKeyReused, InvalidFields, NotPermitted

log = structlog.get_logger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"
# A problem's `type` is this base plus its name (`.../problems/not-found`).
PROBLEM_TYPE_BASE = "https://logfill.dev/problems/"
# Headers of aiohttp's own HTTP errors worth keeping (405 names the allowed methods).
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class Problem(Exception):
    """An error the API answers as is (401, 429, 400 ...)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        problem_type: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.problem_type, self.headers, self.errors = problem_type, headers, errors

    def response(self) -> web.Response:
        return problem_response(
            self.status,
            self.title,
            self.detail,
            problem_type=self.problem_type,
            errors=self.errors,
            headers=self.headers,
        )


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


def field_problems(exc: InvalidFields) -> list[dict[str, str]]:
    return [
        {"parameter" if e.parameter else "pointer": e.pointer, "detail": e.detail}
        for e in exc.errors
    ]


def refusal_response(exc: LogfillError) -> web.Response | None:
    """The answer to a domain refusal; None for errors that are bugs or outages."""
    if isinstance(exc, NotFound):
        return problem_response(404, "Not Found", str(exc), problem_type="not-found")
    if isinstance(exc, InvalidFields):
        detail = "the request has invalid fields; see errors"
        return problem_response(
            422,
            "Unprocessable Content",
            detail,
            problem_type="validation-error",
            errors=field_problems(exc),
        )
    if isinstance(exc, IdempotencyKeyReused):
        return problem_response(
            422, "Idempotency-Key Reused", str(exc), problem_type="idempotency-key-reuse"
        )
    if isinstance(exc, InvalidInput):
        return problem_response(422, "Unprocessable Content", str(exc), problem_type="invalid")
    if isinstance(exc, NotPermitted):
        return problem_response(403, "Forbidden", str(exc), problem_type=exc.problem_type)
    if isinstance(exc, Conflict):
        return problem_response(
            409, "Conflict", str(exc), problem_type=exc.problem_type, **exc.extra
        )
    return None


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    return problem_response(exc.status, exc.reason, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every error into problem+json; a traceback only ever reaches the log."""
    try:
        response: web.StreamResponse = await handler(request)
    except Problem as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except LogfillError as exc:
        refusal = refusal_response(exc)
        if refusal is not None:
            return refusal
        return _unexpected(request, exc)
    except UNAVAILABLE_ERRORS as exc:
        log.warning("database_unavailable", path=request.path, error=type(exc).__name__)
        return problem_response(
            503,
            "Service Unavailable",
            "the database is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
    except Exception as exc:
        return _unexpected(request, exc)
    return response


def _unexpected(request: web.Request, exc: BaseException) -> web.Response:
    log.error("unhandled_error", method=request.method, path=request.path, exc_info=exc)
    return problem_response(500, "Internal Server Error", "an unexpected error occurred")
