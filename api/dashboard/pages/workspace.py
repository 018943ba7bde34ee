"""The workspace: plan, credits (and why requests wait for them), the backfill-webhooks
switch, and the newest requests across subscriptions."""

from __future__ import annotations

from aiohttp import web

from api.dashboard.routes import Route
from api.dashboard.view import show
from api.dashboard.visits import PREFIX, Visit, page
from indexer import accounts, backfills

RECENT = 10


async def workspace_page(visit: Visit) -> web.StreamResponse:
    async with visit.pool.acquire() as conn:
        workspace = await accounts.get_workspace(conn, visit.workspace_id)
        recent = await backfills.recent_backfills(conn, visit.workspace_id, RECENT)
        counts = await backfills.count_by_status(conn, visit.workspace_id)
    requests = [(row, backfills.progress(row)) for row in recent]
    return show(
        visit,
        "workspace.html",
        nav="workspace",
        workspace=workspace,
        requests=requests,
        paused_for_credits=counts.get("paused_credits", 0),
        running=counts.get("processing", 0) + counts.get("queued", 0),
    )


async def set_backfill_webhooks(visit: Visit) -> web.StreamResponse:
    enabled = visit.field("backfill_webhooks") == "on"
    async with visit.pool.acquire() as conn:
        await accounts.update_workspace(conn, visit.workspace_id, backfill_webhooks=enabled)
    raise web.HTTPSeeOther(f"{PREFIX}/")


ROUTES = [
    Route("GET", "/", page(workspace_page), "dashboard_workspace"),
    Route("POST", "/workspace", page(set_backfill_webhooks), "dashboard_workspace_set"),
]
