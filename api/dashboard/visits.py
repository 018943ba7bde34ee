"""Who is looking: the session behind the cookie, sign-in, sign-out and CSRF.

`page(handler)` wraps every dashboard handler: it finds the session (or sends
the browser to sign in), applies the key's rate limit as the API does, and for
a POST checks the form's CSRF token before the handler sees anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
from aiohttp import web
from multidict import MultiDictProxy

from api.routing import path_id
from api.state import POOL, RATE_LIMITER, SETTINGS
from indexer import sessions
from indexer.sessions import Session
from indexer.settings import Settings

COOKIE = "logfill_session"
CSRF_FIELD = "csrf_token"
PREFIX = "/dashboard"


class CsrfRefused(Exception):
    """A state-changing form came without the session's CSRF token."""


@dataclass
class Visit:
    """One signed-in request: its session, form and the app's resources."""

    request: web.Request
    session: Session
    form: MultiDictProxy[Any] | None = None

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.session.workspace_id

    @property
    def pool(self) -> asyncpg.Pool:
        return self.request.app[POOL]

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    def field(self, name: str) -> str:
        return "" if self.form is None else str(self.form.get(name, "")).strip()

    def path_id(self, name: str = "id") -> uuid.UUID:
        return path_id(self.request, name)


Handler = Callable[[Visit], Awaitable[web.StreamResponse]]


def sign_in_url(request: web.Request) -> str:
    return f"{PREFIX}/sign-in?next={quote(request.path_qs, safe='')}"


async def current_session(request: web.Request) -> Session | None:
    async with request.app[POOL].acquire() as conn:
        return await sessions.find_session(conn, request.cookies.get(COOKIE))


def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A signed-in page: the session, the key's rate limit, and CSRF on a POST."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(sign_in_url(request))
            raise web.HTTPSeeOther(f"{PREFIX}/sign-in")
        _rate_limit(request, session)
        visit = Visit(request, session)
        if request.method == "POST":
            check_origin(request)
            visit.form = await request.post()
            if not session.csrf_matches(_sent_token(visit.form)):
                raise CsrfRefused()
        return await handler(visit)

    return wrapped


def check_origin(request: web.Request) -> None:
    """A browser names the page a form came from; another site's form is refused
    (the CSRF token is the main guard; this one also covers the sign-in form)."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise CsrfRefused()


def _sent_token(form: MultiDictProxy[Any]) -> str | None:
    token = form.get(CSRF_FIELD)
    return token if isinstance(token, str) else None


def _rate_limit(request: web.Request, session: Session) -> None:
    wait = request.app[RATE_LIMITER].take(session.api_key_id, session.requests_per_minute)
    if wait is not None:
        raise web.HTTPTooManyRequests(
            text=f"Too many requests for this API key; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, new: sessions.NewSession
) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        COOKIE,
        new.token,
        max_age=settings.dashboard_session_seconds,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=_secure(settings, request),
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=PREFIX)


def _secure(settings: Settings, request: web.Request) -> bool:
    if settings.dashboard_secure_cookies == "auto":
        return request.secure
    return settings.dashboard_secure_cookies == "always"
