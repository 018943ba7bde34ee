"""The OpenAPI 3.1 document, built from the same `Operation`s that are routed.

Schemas come from the pydantic models that validate requests (validation
mode) and render responses (serialization mode); the errors every operation
can answer are derived from what it declares (auth, body, query, path id).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.models import Problem, WebhookBody
from api.problems import PROBLEM_CONTENT_TYPE
from api.routing import Answer, Operation

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_REF = "#/components/schemas/{model}"
Modes = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]


def _standard_errors(operation: Operation) -> dict[int, str]:
    errors: dict[int, str] = {}
    if operation.body is not None:
        errors[400] = "Malformed JSON body" + (
            " or invalid Idempotency-Key" if operation.idempotency_key else ""
        )
        errors[413] = "Request body too large"
    if operation.auth:
        errors[401] = "Missing or invalid API key"
        errors[429] = "Rate limit of the API key exceeded"
    if _PATH_PARAM.search(operation.path):
        errors[404] = "No such object in this workspace"
    if operation.body is not None or operation.query is not None:
        errors[422] = "Invalid fields (one JSON pointer or parameter per bad field)"
    errors.update(operation.refusals)
    return errors


def _headers(headers: dict[str, str]) -> dict[str, Any]:
    return {
        name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
    }


def _answer(answer: Answer, schemas: Modes) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": answer.description}
    if answer.model is not None:
        schema = schemas[(answer.model, "serialization")]
        spec["content"] = {answer.media_type: {"schema": schema}}
    elif answer.media_type != "application/json":
        spec["content"] = {answer.media_type: {"schema": {"type": "string"}}}
    for media_type, description in answer.alternatives.items():
        spec.setdefault("content", {})[media_type] = {
            "schema": {"type": "string", "description": description}
        }
    if answer.headers:
        spec["headers"] = _headers(dict(answer.headers))
    return spec


def _error(status: int, description: str, problem: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": problem}},
    }
    if status == 401:
        spec["headers"] = _headers({"WWW-Authenticate": "Bearer challenge"})
    if status == 429:
        spec["headers"] = _headers({"Retry-After": "Seconds until a request is allowed again"})
    return spec


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in _PATH_PARAM.findall(operation.path)
    ]
    if operation.query is not None:
        schema = operation.query.model_json_schema()
        assert "$defs" not in schema, "query models use inline types only"
        for name, prop in schema["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    if operation.idempotency_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Makes retries safe: 1-255 printable ASCII characters.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[\\x20-\\x7e]+$",
                },
            }
        )
    return params


def _operation(operation: Operation, schemas: Modes) -> dict[str, Any]:
    problem = schemas[(Problem, "serialization")]
    responses: dict[str, Any] = {str(a.status): _answer(a, schemas) for a in operation.answers}
    for status, description in sorted(_standard_errors(operation).items()):
        responses[str(status)] = _error(status, description, problem)
    responses["default"] = _error(
        0, "Unexpected error (500) or database unavailable (503)", problem
    )
    spec: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": responses,
    }
    if operation.description:
        spec["description"] = operation.description
    if params := _parameters(operation):
        spec["parameters"] = params
    if operation.body is not None:
        schema = schemas[(operation.body, "validation")]
        spec["requestBody"] = {
            # A model without required fields takes an empty body as `{}` (a no-op PATCH).
            "required": any(f.is_required() for f in operation.body.model_fields.values()),
            "content": {"application/json": {"schema": schema}},
        }
    if not operation.auth:
        spec["security"] = []
    return spec


def _schemas(operations: Sequence[Operation]) -> tuple[Modes, dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (Problem, "serialization"),
        (WebhookBody, "serialization"),
    ]
    for operation in operations:
        if operation.body is not None:
            wanted.append((operation.body, "validation"))
        wanted.extend((a.model, "serialization") for a in operation.answers if a.model)
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template=_REF)
    return {key: value for key, value in refs.items()}, definitions.get("$defs", {})  # type: ignore[misc]


# The deliveries logfill POSTs to subscriptions (OpenAPI 3.1 `webhooks`).
WEBHOOKS = {
    "backfill.matches": "New matches of a backfill request",
    "backfill.matches.removed": "Delivered matches that a reorg below the safe head orphaned",
}


def _webhooks(schemas: Modes) -> dict[str, Any]:
    body = {
        "required": True,
        "content": {"application/json": {"schema": schemas[(WebhookBody, "serialization")]}},
    }
    return {
        name: {
            "post": {
                "summary": summary,
                "description": "Signed with the Standard Webhooks headers (`webhook-id`, "
                "`webhook-timestamp`, `webhook-signature`); any 2xx answer acknowledges it.",
                "parameters": [
                    {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
                    for header in ("webhook-id", "webhook-timestamp", "webhook-signature")
                ],
                "requestBody": body,
                "responses": {"200": {"description": "Received (any 2xx)"}},
            }
        }
        for name, summary in WEBHOOKS.items()
    }


def build_openapi(operations: Sequence[Operation], *, version: str) -> dict[str, Any]:
    schemas, definitions = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "logfill",
            "version": version,
            "description": "Backfill historical blockchain event logs for your subscriptions. "
            "Errors are RFC 9457 problem details.",
        },
        "paths": paths,
        "webhooks": _webhooks(schemas),
        "components": {
            "schemas": definitions,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Your API key"}
            },
        },
        "security": [{"apiKey": []}],
    }
