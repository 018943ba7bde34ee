"""GET/PATCH /v1/workspace: the caller's workspace and its settings."""

from __future__ import annotations

from aiohttp import web

from api.models import Workspace, WorkspacePatch
from api.routing import Answer, Call, Operation, json_response
from indexer import accounts


async def get_workspace(call: Call) -> web.Response:
    async with call.pool.acquire() as conn:
        row = await accounts.get_workspace(conn, call.workspace_id)
    return json_response(Workspace.model_validate(dict(row)))


async def patch_workspace(call: Call) -> web.Response:
    patch = call.body_as(WorkspacePatch)
    async with call.pool.acquire() as conn:
        row = await accounts.update_workspace(
            conn, call.workspace_id, backfill_webhooks=patch.backfill_webhooks
        )
    return json_response(Workspace.model_validate(dict(row)))


OPERATIONS = [
    Operation(
        "GET",
        "/v1/workspace",
        "getWorkspace",
        "The caller's workspace",
        get_workspace,
        [Answer(200, "The workspace", Workspace)],
        tag="workspace",
    ),
    Operation(
        "PATCH",
        "/v1/workspace",
        "updateWorkspace",
        "Whether backfill matches also go to subscriptions' webhooks",
        patch_workspace,
        [Answer(200, "The updated workspace", Workspace)],
        tag="workspace",
        body=WorkspacePatch,
    ),
]
