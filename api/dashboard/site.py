"""The dashboard's wiring: templates, filters, static files, error pages, routes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from api.dashboard import filters
from api.dashboard.pages import backfills, subscriptions, workspace
from api.dashboard.routes import Route
from api.dashboard.signin import ROUTES as SIGN_IN_ROUTES
from api.dashboard.visits import PREFIX, CsrfRefused
from indexer.db.pool import UNAVAILABLE_ERRORS
from indexer.errors import InvalidInput, NotFound
from indexer.refusals import Conflict, NotPermitted

log = structlog.get_logger(__name__)
# Static files are named by their content's hash (`?v=`), so browsers may keep them.
STATIC_CACHE = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    version: str


STATIC = web.AppKey[dict[str, StaticFile]]("dashboard_static")


def _load_static() -> dict[str, StaticFile]:
    files = {}
    for entry in resources.files("api.dashboard").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:12]
            files[entry.name] = StaticFile(body, CONTENT_TYPES[suffix], version)
    return files


async def static_file(request: web.Request) -> web.Response:
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=found.body,
        content_type=found.content_type,
        charset="utf-8",
        headers={"Cache-Control": STATIC_CACHE, "ETag": f'"{found.version}"'},
    )


def _error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        {"status": status, "title": title, "detail": detail},
        status=status,
    )


@web.middleware
async def dashboard_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refusals as pages a person can read (the API's are problem+json)."""
    if not request.path.startswith(PREFIX):
        response: web.StreamResponse = await handler(request)
        return response
    try:
        response = await handler(request)
        return response
    except CsrfRefused:
        return _error_page(
            request,
            403,
            "This form cannot be accepted",
            "It did not carry this session's security token (it may come from another "
            "site, or from before you signed in again). Go back, reload the page and "
            "send it again.",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_page(request, exc.status, exc.reason, exc.text or "")
    except NotFound:
        return _error_page(
            request, 404, "Not found", "Nothing here belongs to your workspace by that name."
        )
    except NotPermitted as exc:
        return _error_page(request, 403, "Not allowed by your plan", str(exc))
    except Conflict as exc:
        return _error_page(request, 409, "Not possible right now", str(exc))
    except InvalidInput as exc:
        return _error_page(request, 422, "Not accepted", str(exc))
    except UNAVAILABLE_ERRORS as exc:
        log.warning("database_unavailable", path=request.path, error=type(exc).__name__)
        return _error_page(
            request, 503, "Unavailable", "The database cannot be reached; try again shortly."
        )


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{PREFIX}/")


def add_dashboard(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("api.dashboard", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    static = _load_static()
    app[STATIC] = static
    filters.install(env, static)
    app.middlewares.append(dashboard_errors)
    app.router.add_get("/", home)
    app.router.add_get(f"{PREFIX}/static/{{name}}", static_file)
    routes: list[Route] = [
        *SIGN_IN_ROUTES,
        *workspace.ROUTES,
        *subscriptions.ROUTES,
        *backfills.ROUTES,
    ]
    for route in routes:
        app.router.add_route(route.method, PREFIX + route.path, route.handler, name=route.name)
