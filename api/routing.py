"""Operations: one declaration per endpoint, used both to route and to document.

An `Operation` names its method, path, models and answers; `add_operations`
registers a wrapper that authenticates, rate-limits and validates before the
handler runs, and `api.openapi` builds `/openapi.json` from the same list, so
the document cannot drift from what is served.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.auth import Principal, authenticate
from api.problems import Problem
from api.state import KEY_CACHE, POOL, RATE_LIMITER, SETTINGS
from indexer.errors import NotFound
from indexer.refusals import FieldError, InvalidFields
from indexer.settings import Settings

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Answer:
    """One documented response of an operation."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description
    media_type: str = JSON
    alternatives: Mapping[str, str] = field(default_factory=dict)  # other media type -> what


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    answers: Sequence[Answer]
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    refusals: Mapping[int, str] = field(default_factory=dict)  # status -> when
    auth: bool = True
    idempotency_key: bool = False
    description: str | None = None


@dataclass
class Call:
    """What a handler gets: the validated request and its workspace."""

    request: web.Request
    principal: Principal | None
    raw_body: bytes = b""
    body: BaseModel | None = None
    query: BaseModel | None = None

    @property
    def workspace_id(self) -> uuid.UUID:
        assert self.principal is not None, "an authenticated operation"
        return self.principal.workspace_id

    @property
    def pool(self) -> asyncpg.Pool:
        return self.request.app[POOL]

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    def json_body(self) -> Any:
        return orjson.loads(self.raw_body or b"{}")

    def path_id(self, name: str = "id") -> uuid.UUID:
        return path_id(self.request, name)


def path_id(request: web.Request, name: str = "id") -> uuid.UUID:
    """A path id; anything that is not a UUID is an unknown id (404, same body)."""
    text = request.match_info[name]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"{text!r} not found") from None


def json_response(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=model.model_dump_json().encode(), content_type=JSON, headers=headers
    )


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _field_errors(exc: ValidationError, *, parameter: bool) -> list[FieldError]:
    """pydantic's errors as JSON pointers (or query parameter names), one per field."""
    errors: dict[str, FieldError] = {}
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [p for p in error["loc"] if p != "[key]"]
        message = error["msg"].removeprefix("Value error, ")
        if parameter:
            name = str(loc[0]) if loc else ""
        else:
            name = "".join(f"/{_escape(p)}" for p in loc)
        errors.setdefault(name, FieldError(name, message, parameter))
    return list(errors.values())


def _parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise Problem(
                400,
                "Bad Request",
                "the request body is not valid JSON",
                problem_type="malformed-json",
            ) from None
        raise InvalidFields(_field_errors(exc, parameter=False)) from None


def _parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate({k: request.query.getone(k) for k in request.query})
    except ValidationError as exc:
        raise InvalidFields(_field_errors(exc, parameter=True)) from None


def _rate_limit(request: web.Request, principal: Principal) -> None:
    wait = request.app[RATE_LIMITER].take(principal.key_id, principal.requests_per_minute)
    if wait is not None:
        raise Problem(
            429,
            "Too Many Requests",
            f"this API key may make {principal.requests_per_minute} requests per minute; "
            f"retry in {wait} s",
            problem_type="rate-limited",
            headers={"Retry-After": str(wait)},
        )


def _endpoint(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = None
        if operation.auth:
            principal = await authenticate(request, request.app[POOL], request.app[KEY_CACHE])
            _rate_limit(request, principal)
        call = Call(request, principal)
        if operation.query is not None:
            call.query = _parse_query(request, operation.query)
        if operation.body is not None:
            call.raw_body = await request.read()
            call.body = _parse_body(call.raw_body, operation.body)
        return await operation.handler(call)

    return endpoint


def add_operations(app: web.Application, operations: Sequence[Operation]) -> None:
    for operation in operations:
        app.router.add_route(
            operation.method, operation.path, _endpoint(operation), name=operation.operation_id
        )
