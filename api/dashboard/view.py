"""Rendering a page for a visit, and the form errors the API's models report."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ValidationError

from api import render
from api.dashboard.visits import Visit
from api.models import Subscription
from indexer import subscriptions
from indexer.db.pool import Connection
from indexer.refusals import InvalidFields


def show(visit: Visit, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """`template` with the visit (its CSRF token, the nav) and `context`."""
    return aiohttp_jinja2.render_template(
        template, visit.request, {"visit": visit, **context}, status=status
    )


async def subscription_of(conn: Connection, visit: Visit, name: str = "id") -> Subscription:
    """The visit's subscription named in the path (404 when not the workspace's)."""
    row = await subscriptions.get_subscription(conn, visit.workspace_id, visit.path_id(name))
    return render.subscription(row)


def field_errors_of(exc: ValidationError | InvalidFields) -> dict[str, str]:
    """Errors by form field: the first part of each JSON pointer (`/labels/x` -> labels)."""
    errors: dict[str, str] = {}
    if isinstance(exc, InvalidFields):
        pairs = [(e.pointer, e.detail) for e in exc.errors]
    else:
        pairs = [
            ("/" + "/".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
    for pointer, detail in pairs:
        name = pointer.strip("/").split("/")[0] or "form"
        errors.setdefault(name, detail)
    return errors


def validate(
    model: type[BaseModel], data: dict[str, Any]
) -> tuple[BaseModel | None, dict[str, str]]:
    """The API's model over a form's values: the model, or the errors by field."""
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, field_errors_of(exc)
