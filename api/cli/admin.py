"""`logfill admin ...`: the operator's commands (workspaces, credits, plans).

They are not part of the HTTP API, which only ever acts for one workspace: they
need database access, apply pending migrations first, and print their answer
as JSON on stdout (the new API key is shown here once, and stored only hashed).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from api.cli.database import Command, apply_migrations, on_database, print_json
from indexer import accounts
from indexer.db.pool import connect
from indexer.settings import Settings

Action = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[object]]


def _admin(action: Action) -> Command:
    """Admin commands: one connection, one action, its JSON answer on stdout."""

    def command(settings: Settings, args: argparse.Namespace) -> int:
        async def work(url: str) -> Any:
            await apply_migrations(settings, url)
            conn = await connect(url, timeout=settings.db_connect_timeout_seconds)
            try:
                return await action(conn, args)
            finally:
                await conn.close()

        print_json(on_database(settings, work))
        return 0

    return command


async def _workspace_create(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    created = await accounts.create_workspace(
        conn, name=args.name, plan=args.plan, credits=args.credits
    )
    return {"workspace_id": str(created.workspace_id), "api_key": created.api_key}


async def _credits_add(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = accounts.parse_workspace_id(args.workspace)
    balance = await accounts.add_credits(conn, workspace_id, args.amount)
    return {"workspace_id": str(workspace_id), "credits": balance}


async def _plan_set(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = accounts.parse_workspace_id(args.workspace)
    plan = await accounts.set_plan(conn, workspace_id, args.plan)
    return {"workspace_id": str(workspace_id), "plan": plan}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser("admin", help="operator commands (print JSON on stdout)")
    groups = admin.add_subparsers(dest="group", required=True, metavar="GROUP")

    workspace = groups.add_parser("workspace", help="manage workspaces")
    ws_actions = workspace.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ws_actions.add_parser(
        "create", help="create a workspace and print its id and first API key (shown once)"
    )
    create.add_argument("--name", required=True, help="workspace name")
    create.add_argument("--plan", required=True, help="plan name: free, pro or enterprise")
    create.add_argument("--credits", type=int, default=0, help="opening credit balance")
    create.set_defaults(func=_admin(_workspace_create))

    credits = groups.add_parser("credits", help="manage credit balances")
    credit_actions = credits.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = credit_actions.add_parser(
        "add", help="top up a workspace; paused_credits requests resume at their next window"
    )
    add.add_argument("--workspace", required=True, help="workspace id")
    add.add_argument("--amount", type=int, required=True, help="credits to add (> 0)")
    add.set_defaults(func=_admin(_credits_add))

    plan = groups.add_parser("plan", help="manage plans of workspaces")
    plan_actions = plan.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_plan = plan_actions.add_parser("set", help="move a workspace to another plan")
    set_plan.add_argument("--workspace", required=True, help="workspace id")
    set_plan.add_argument("--plan", required=True, help="plan name")
    set_plan.set_defaults(func=_admin(_plan_set))
