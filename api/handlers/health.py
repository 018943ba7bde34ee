"""Operations endpoints: liveness, readiness, metrics and the OpenAPI document.

They sit outside /v1 and need no API key and no rate limit, because load
balancers, Prometheus and client generators call them; they are declared like
every other endpoint so that /openapi.json lists them too.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.models import Health, Ready
from api.problems import problem_response
from api.routing import Answer, Call, Operation
from api.state import MIGRATIONS, OPENAPI
from indexer.db.migrate import check_current
from indexer.db.pool import CONNECT_ERRORS, describe_connect_error
from indexer.errors import MigrationError

READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(call: Call) -> web.Response:
    """The process is up and serving; says nothing about its dependencies."""
    return web.json_response({"status": "ok"})


async def readyz(call: Call) -> web.Response:
    """Ready when the database answers and holds exactly the migrations we know."""
    known = call.request.app[MIGRATIONS]
    try:
        async with call.pool.acquire(timeout=READINESS_TIMEOUT_SECONDS) as conn:
            pending = await check_current(conn, known)
    except MigrationError as exc:
        return problem_response(503, "Not Ready", str(exc))
    except CONNECT_ERRORS as exc:
        detail = f"database unreachable: {describe_connect_error(exc)}"
        return problem_response(503, "Not Ready", detail)
    if pending:
        labels = ", ".join(m.label for m in pending)
        return problem_response(503, "Not Ready", f"migrations not applied: {labels}")
    return web.json_response(
        {"status": "ready", "schema_version": known[-1].label if known else None}
    )


async def metrics(call: Call) -> web.Response:
    """Prometheus text format: this process's windows, deliveries and requests."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(call: Call) -> web.Response:
    """The document `api.app` built from every module's `OPERATIONS` at start."""
    return web.Response(body=call.request.app[OPENAPI], content_type="application/json")


OPERATIONS = [
    Operation(
        "GET",
        "/healthz",
        "healthz",
        "The process is up",
        healthz,
        [Answer(200, "Up", Health)],
        tag="operations",
        auth=False,
    ),
    Operation(
        "GET",
        "/readyz",
        "readyz",
        "Database reachable and migrations current",
        readyz,
        [Answer(200, "Ready", Ready)],
        tag="operations",
        auth=False,
        refusals={503: "Not ready"},
    ),
    Operation(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics",
        metrics,
        [Answer(200, "Prometheus text format", media_type="text/plain")],
        tag="operations",
        auth=False,
    ),
    Operation(
        "GET",
        "/openapi.json",
        "openapi",
        "This document",
        openapi,
        [Answer(200, "OpenAPI 3.1", media_type="application/json")],
        tag="operations",
        auth=False,
    ),
]
