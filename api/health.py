"""Operations endpoints: liveness, readiness and metrics (not under /v1, no auth)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.keys import MIGRATIONS, POOL
from api.problems import problem_response
from indexer.db import CONNECT_ERRORS, describe_connect_error
from indexer.errors import MigrationError
from indexer.migrations import check_current

READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving; says nothing about its dependencies."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and holds exactly the migrations we know."""
    known = request.app[MIGRATIONS]
    try:
        async with request.app[POOL].acquire(timeout=READINESS_TIMEOUT_SECONDS) as conn:
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


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: this process's windows, deliveries and requests."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
