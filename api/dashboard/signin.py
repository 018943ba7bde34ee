"""Sign in with an API key, sign out."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from api.dashboard.routes import Route
from api.dashboard.visits import (
    COOKIE,
    PREFIX,
    CsrfRefused,
    check_origin,
    clear_session_cookie,
    current_session,
    set_session_cookie,
)
from api.state import POOL, SETTINGS
from indexer import sessions


def _next_path(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only (no open redirect)."""
    if value and value.startswith(f"{PREFIX}/") and not value.startswith("//"):
        return value
    return f"{PREFIX}/"


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(_next_path(request.query.get("next")))
    return aiohttp_jinja2.render_template(
        "sign_in.html", request, {"next": _next_path(request.query.get("next")), "error": None}
    )


async def sign_in(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    form = await request.post()
    api_key = str(form.get("api_key", ""))
    target = _next_path(str(form.get("next", "")))
    async with request.app[POOL].acquire() as conn:
        new = await sessions.sign_in(conn, api_key, request.app[SETTINGS].dashboard_session_seconds)
    if new is None:
        return aiohttp_jinja2.render_template(
            "sign_in.html",
            request,
            {"next": target, "error": "This API key is not valid (or it was revoked)."},
            status=401,
        )
    response = web.HTTPSeeOther(target)
    set_session_cookie(response, request, new)
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is not None:
        check_origin(request)
        form = await request.post()
        token = form.get("csrf_token")
        if not session.csrf_matches(token if isinstance(token, str) else None):
            raise CsrfRefused()
        async with request.app[POOL].acquire() as conn:
            await sessions.sign_out(conn, request.cookies.get(COOKIE))
    response = web.HTTPSeeOther(f"{PREFIX}/sign-in")
    clear_session_cookie(response)
    raise response


ROUTES = [
    Route("GET", "/sign-in", sign_in_form, "dashboard_sign_in"),
    Route("POST", "/sign-in", sign_in, "dashboard_sign_in_post"),
    Route("POST", "/sign-out", sign_out, "dashboard_sign_out"),
]
