"""Dashboard sessions: sign in with an API key, a cookie that is HttpOnly and
SameSite=Strict, CSRF on every state change, sign-out that really ends it."""

from __future__ import annotations

import re
import uuid

import asyncpg
from yarl import URL

from indexer.accounts import create_api_key, revoke_api_key
from tests.support.api import Client, Tenant, make_tenant

TOKEN_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


async def sign_in(client: Client, api_key: str) -> None:
    response = await client.post(
        "/dashboard/sign-in", data={"api_key": api_key}, allow_redirects=False
    )
    assert response.status == 303, await response.text()


async def csrf_token(client: Client, path: str = "/dashboard/") -> str:
    page = await client.get(path)
    assert page.status == 200
    found = TOKEN_INPUT.search(await page.text())
    assert found, "a form with the session's CSRF token"
    return found.group(1)


async def test_a_page_sends_a_stranger_to_sign_in_and_back(client: Client, tenant: Tenant) -> None:
    response = await client.get("/dashboard/?view=all", allow_redirects=False)
    assert response.status == 303
    target = URL(response.headers["Location"])
    assert target.path == "/dashboard/sign-in"
    assert target.query["next"] == "/dashboard/?view=all"

    signed_in = await client.post(
        "/dashboard/sign-in",
        data={"api_key": tenant.api_key, "next": "/dashboard/subscriptions"},
        allow_redirects=False,
    )
    assert signed_in.headers["Location"] == "/dashboard/subscriptions"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert "Max-Age=43200" in cookie and "Secure" not in cookie  # plain http here
    assert tenant.api_key not in cookie


async def test_a_wrong_or_revoked_key_is_refused_without_a_session(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    wrong = await client.post("/dashboard/sign-in", data={"api_key": "lf_nope"})
    assert wrong.status == 401
    assert "not valid" in await wrong.text()
    assert "Set-Cookie" not in wrong.headers

    second = await create_api_key(conn, tenant.workspace_id, name="dash")
    await revoke_api_key(conn, second.id)
    revoked = await client.post("/dashboard/sign-in", data={"api_key": second.api_key})
    assert revoked.status == 401


async def test_revoking_the_key_ends_its_sessions(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    second = await create_api_key(conn, tenant.workspace_id, name="dash")
    await sign_in(client, second.api_key)
    assert (await client.get("/dashboard/", allow_redirects=False)).status == 200
    await revoke_api_key(conn, second.id)
    assert (await client.get("/dashboard/", allow_redirects=False)).status == 303


async def test_an_expired_session_is_over(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await sign_in(client, tenant.api_key)
    await conn.execute(
        "UPDATE dashboard_sessions SET expires_at = now() - interval '1 second',"
        " created_at = now() - interval '1 hour'"
    )
    assert (await client.get("/dashboard/", allow_redirects=False)).status == 303


async def test_state_changes_need_the_sessions_csrf_token_and_our_origin(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await sign_in(client, tenant.api_key)
    token = await csrf_token(client)
    before = await conn.fetchval(
        "SELECT backfill_webhooks FROM workspaces WHERE id = $1", tenant.workspace_id
    )
    assert before is True

    missing = await client.post("/dashboard/workspace", data={})
    assert missing.status == 403 and "security token" in await missing.text()
    wrong = await client.post("/dashboard/workspace", data={"csrf_token": token[:-1] + "x"})
    assert wrong.status == 403
    foreign = await client.post(
        "/dashboard/workspace",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    assert await conn.fetchval(
        "SELECT backfill_webhooks FROM workspaces WHERE id = $1", tenant.workspace_id
    )

    allowed = await client.post(
        "/dashboard/workspace", data={"csrf_token": token}, allow_redirects=False
    )
    assert allowed.status == 303
    assert not await conn.fetchval(
        "SELECT backfill_webhooks FROM workspaces WHERE id = $1", tenant.workspace_id
    )


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(
    client: Client, tenant: Tenant
) -> None:
    await sign_in(client, tenant.api_key)
    stolen = {c.key: c.value for c in client.session.cookie_jar}
    token = await csrf_token(client)
    out = await client.post(
        "/dashboard/sign-out", data={"csrf_token": token}, allow_redirects=False
    )
    assert out.status == 303 and out.headers["Location"] == "/dashboard/sign-in"
    assert (await client.get("/dashboard/", allow_redirects=False)).status == 303
    replayed = await client.get("/dashboard/", cookies=stolen, allow_redirects=False)
    assert replayed.status == 303  # the server forgot the session, not just the browser


async def test_sign_in_goes_only_to_dashboard_pages(client: Client, tenant: Tenant) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/v1/workspace"):
        response = await client.post(
            "/dashboard/sign-in",
            data={"api_key": tenant.api_key, "next": target},
            allow_redirects=False,
        )
        assert response.headers["Location"] == "/dashboard/"


async def test_the_workspace_page_shows_its_own_workspace_only(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    other = await make_tenant(conn, credits=777)
    await conn.execute("UPDATE workspaces SET name = 'Other Co' WHERE id = $1", other.workspace_id)
    await sign_in(client, tenant.api_key)
    page = await (await client.get("/dashboard/")).text()
    assert "Other Co" not in page and "777" not in page
    assert "No backfill requests yet" in page  # the empty state says what to do next
    unknown = await client.get(f"/dashboard/requests/{uuid.uuid4()}")
    assert unknown.status == 404 and "text/html" in unknown.headers["Content-Type"]


async def test_static_files_are_versioned_and_cached(client: Client, tenant: Tenant) -> None:
    await sign_in(client, tenant.api_key)
    page = await (await client.get("/dashboard/")).text()
    href = re.search(r'href="(/dashboard/static/app\.css\?v=[0-9a-f]{12})"', page)
    assert href
    css = await client.get(href.group(1))
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (await client.get("/dashboard/static/missing.js")).status == 404
