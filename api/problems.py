"""RFC 9457 problem details: every error the API returns has this shape.

`problem_middleware` is the one place where errors of a routed request become
responses: refusals from the domain (`indexer.refusals`, `NotFound`), problems
raised by the API itself (`Problem`), aiohttp's own HTTP errors (404, 405, 413),
a body that cannot be read (bad gzip), a database that went away (503), and
anything unexpected (500, logged, never shown).

A request aiohttp's parser rejects (a header over 8 KiB, a control character in
a header, a Content-Encoding it cannot decode, not HTTP at all) never reaches
the application or its middleware: aiohttp answers it from
`RequestHandler.handle_error`, as text/plain, and logs a traceback at ERROR on
`aiohttp.server`. aiohttp has no public hook for that answer (aio-libs/aiohttp
#3287, open since 2018); its documented knob, the `logger` passed to the runner,
changes only where the traceback goes. So `ProblemRunner` serves the application
with a `RequestHandler` whose `handle_error` answers problem+json and logs one
line without a traceback: an anonymous client cannot fill the log with
tracebacks. `tests/db/test_api_client_errors.py` pins this against the aiohttp
in use.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    DecompressSizeError,
    HttpProcessingError,
    LineTooLong,
)

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
    except web.RequestPayloadError as exc:
        return _unreadable_body(request, exc)
    except Exception as exc:
        return _unexpected(request, exc)
    return response


def _unexpected(request: web.Request, exc: BaseException) -> web.Response:
    log.error("unhandled_error", method=request.method, path=request.path, exc_info=exc)
    return problem_response(500, "Internal Server Error", "an unexpected error occurred")


def _unreadable_body(request: web.Request, exc: web.RequestPayloadError) -> web.Response:
    """A body aiohttp could not decode or frame: the client's fault, so 4xx and no log.

    aiohttp raises this from `request.read()` with the parser's error as the cause.
    The connection's framing can no longer be trusted, so it is closed after the
    answer (what aiohttp still reads of the body then is dropped by `ProblemRequestHandler`).
    """
    cause = exc.__cause__
    if isinstance(cause, DecompressSizeError):
        response = problem_response(
            413,
            "Content Too Large",
            "the request body is too large once decompressed",
            problem_type="malformed-body",
        )
    elif isinstance(cause, ContentEncodingError):
        encoding = request.headers.get("Content-Encoding", "")[:40]
        response = problem_response(
            400,
            "Bad Request",
            f"the request body is not valid {encoding!r} data (Content-Encoding); "
            "send it uncompressed or compressed as declared",
            problem_type="malformed-body",
        )
    else:
        response = problem_response(
            400,
            "Bad Request",
            "the request body could not be read: it does not match its Content-Length "
            "or chunked framing",
            problem_type="malformed-body",
        )
    response.force_close()
    return response


# --- errors aiohttp answers before the application sees the request ----------------

# Encodings aiohttp decodes whatever is installed (br and zstd need optional packages).
_ALWAYS_DECODED = "gzip, deflate"


def _first_line(exc: HttpProcessingError, limit: int = 120) -> str:
    """The parser's reason, short: its first line (aiohttp's later lines echo the bytes)."""
    line = (exc.message or type(exc).__name__).splitlines()[0].rstrip(" :")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def rejected_request_response(exc: HttpProcessingError, *, max_line: int) -> web.Response:
    """The problem+json answer to a request aiohttp's parser refused."""
    if isinstance(exc, ContentEncodingError):
        # Raised while reading the headers only when no decoder exists for the encoding.
        return problem_response(
            415,
            "Unsupported Media Type",
            f"this server cannot decode the request's Content-Encoding; send the body "
            f"uncompressed or as {_ALWAYS_DECODED}",
            problem_type="unsupported-content-encoding",
            headers={"Accept-Encoding": _ALWAYS_DECODED},
        )
    if isinstance(exc, LineTooLong):
        detail = f"the request line or a header field is longer than {max_line} bytes"
    else:
        detail = f"the request is not valid HTTP/1.1: {_first_line(exc)}"
    return problem_response(400, "Bad Request", detail, problem_type="malformed-request")


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering what it rejects itself as problem+json.

    `handle_error` is where aiohttp answers a request its parser refused (and,
    as a last resort, a handler that raised past every middleware or timed out).
    Stock aiohttp answers text/plain and logs the parser's traceback at ERROR, so
    every malformed request from anyone on the network costs a traceback. Here a
    parser error is one line without a traceback (WARNING; DEBUG for traffic that
    is not HTTP at all, e.g. TLS sent to this plain-HTTP port, as aiohttp itself
    does), and only errors of our own keep their traceback.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            fields = {"remote": request.remote, "error": type(exc).__name__}
            if isinstance(exc, BadHttpMethod):
                log.debug("http_request_rejected", **fields, reason=_first_line(exc))
            else:
                log.warning("http_request_rejected", **fields, reason=_first_line(exc))
        elif status == 504:
            log.warning("request_timed_out", remote=request.remote)
        else:
            log.error("unhandled_error", remote=request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            # As aiohttp: part of a response went out already; only closing is left.
            raise ConnectionError("a response was partly sent; cannot send an error")
        if isinstance(exc, HttpProcessingError):
            response = rejected_request_response(exc, max_line=self.max_line_size)
        elif status == 504:
            response = problem_response(504, "Gateway Timeout", "the request took too long")
        else:
            response = problem_response(
                500, "Internal Server Error", "an unexpected error occurred"
            )
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """Client errors aiohttp meets after the answer went out: one DEBUG line.

        After `_unreadable_body` answered a broken body, aiohttp reads what is
        left of it ("lingering") and meets the same decoding error again, which
        it logs as "Unhandled exception" with a traceback. The client has its
        answer; this is noise, and a client could repeat it at will.
        """
        exc = kw.get("exc_info")
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
            log.debug("http_client_error_after_response", error=type(exc).__name__)
            return
        super().log_exception(*args, **kw)


class _ProblemServer(web.Server):
    """aiohttp's low-level server, building `ProblemRequestHandler`s for connections."""

    def __call__(self) -> web.RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer parser errors as problem+json.

    The app's server is built as aiohttp builds it (startup, middlewares, router,
    request factory, runner keyword arguments); only the per-connection handler
    class differs. This leans on aiohttp internals (`AppRunner._make_server`,
    `Server._kwargs` and `_loop`), so the API tests that send malformed requests
    fail on an aiohttp release that changes them.
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **server._kwargs,
        )
