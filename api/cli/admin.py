"""`logfill admin ...`: the operator's commands (workspaces, API keys, credits, plans,
chains).

They are not part of the HTTP API, which only ever acts for one workspace: they
need database access, apply pending migrations first, and print their answer
as JSON on stdout (a new API key is shown here once, and stored only hashed).
"""

from __future__ import annotations

import argparse
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from api.cli.database import Command, apply_migrations, on_database, print_json
from indexer import accounts
from indexer.db.pool import connect
from indexer.outbox.enqueue import OutboxLimits
from indexer.settings import Settings
from indexer.store import reorg

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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


def _admin_with_settings(make: Callable[[Settings], Action]) -> Command:
    """An admin command whose action needs the settings (outbox limits)."""

    def command(settings: Settings, args: argparse.Namespace) -> int:
        return _admin(make(settings))(settings, args)

    return command


async def _workspace_create(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    created = await accounts.create_workspace(
        conn, name=args.name, plan=args.plan, credits=args.credits
    )
    return {"workspace_id": str(created.workspace_id), "api_key": created.api_key}


def _plain(item: DataclassInstance) -> dict[str, object]:
    """A domain answer as JSON (ids from asyncpg are a UUID subclass orjson does not take)."""
    return {
        name: str(value) if isinstance(value, uuid.UUID) else value
        for name, value in dataclasses.asdict(item).items()
    }


async def _workspace_list(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    return [_plain(workspace) for workspace in await accounts.list_workspaces(conn)]


async def _key_create(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = accounts.parse_workspace_id(args.workspace)
    return _plain(await accounts.create_api_key(conn, workspace_id, name=args.name))


async def _key_list(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = accounts.parse_workspace_id(args.workspace)
    return [_plain(key) for key in await accounts.list_api_keys(conn, workspace_id)]


async def _key_revoke(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    key_id = accounts.parse_key_id(args.key_id or args.key_option)
    workspace_id = None if args.workspace is None else accounts.parse_workspace_id(args.workspace)
    return _plain(await accounts.revoke_api_key(conn, key_id, workspace_id=workspace_id))


async def _credits_add(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = accounts.parse_workspace_id(args.workspace)
    balance = await accounts.add_credits(conn, workspace_id, args.amount)
    return {"workspace_id": str(workspace_id), "credits": balance}


async def _plan_set(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = accounts.parse_workspace_id(args.workspace)
    plan = await accounts.set_plan(conn, workspace_id, args.plan)
    return {"workspace_id": str(workspace_id), "plan": plan}


async def _chain_show(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    return await reorg.chain_status(conn, args.chain_id)


def _chain_resume(settings: Settings) -> Action:
    async def action(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
        limits = OutboxLimits.from_settings(settings)
        return await reorg.resume_chain(conn, args.chain_id, limits, rescan_from=args.rescan_from)

    return action


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
    ws_list = ws_actions.add_parser(
        "list", help="every workspace, oldest first, with its number of active keys"
    )
    ws_list.set_defaults(func=_admin(_workspace_list))

    _add_key_parsers(groups)

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

    _add_chain_parsers(groups)


def _add_chain_parsers(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chain = groups.add_parser("chain", help="see a chain's state; resume one a deep reorg stopped")
    actions = chain.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", help="heads, the last reorg check, why the windows are stopped, the last reorg"
    )
    show.add_argument("chain_id", type=int, help="chain id")
    show.set_defaults(func=_admin(_chain_show))
    resume = actions.add_parser(
        "resume",
        help="let the windows of a chain stopped by a deep reorg run again",
        description=(
            "A reorg deeper than the chain's max_reorg_depth stops its windows and removes"
            " nothing. Once you know where the fork is (or that the provider was wrong),"
            " resume: with --rescan-from BLOCK, the matches from BLOCK on are removed and"
            " refunded (a backfill.matches.removed webhook each), and the requests scan"
            " those blocks again; without it the windows check the chain again as it is."
        ),
    )
    resume.add_argument("chain_id", type=int, help="chain id")
    resume.add_argument(
        "--rescan-from", type=int, metavar="BLOCK", help="the first block the reorg replaced"
    )
    resume.set_defaults(func=_admin_with_settings(_chain_resume))


REVOKE_DESCRIPTION = (
    "Revoke an API key of a workspace; its other keys keep working. The key fails new"
    " lookups at once, but an API process that accepted it lately keeps accepting it from"
    " its cache for at most LOGFILL_API_KEY_CACHE_SECONDS (default 10 s), then answers 401."
    " Revoking a revoked key changes nothing and prints already_revoked: true."
)


def _add_key_parsers(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = groups.add_parser("key", help="manage the API keys of workspaces")
    key_actions = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser(
        "create",
        help="another API key for a workspace, printed once (the others keep working)",
    )
    create.add_argument("--workspace", required=True, help="workspace id")
    create.add_argument("--name", help="a label to tell the workspace's keys apart")
    create.set_defaults(func=_admin(_key_create))

    key_list = key_actions.add_parser(
        "list", help="a workspace's keys, revoked ones included (prefixes only, never a key)"
    )
    key_list.add_argument("--workspace", required=True, help="workspace id")
    key_list.set_defaults(func=_admin(_key_list))

    revoke = key_actions.add_parser(
        "revoke",
        help="revoke a key (the API refuses it within the key cache period)",
        description=REVOKE_DESCRIPTION,
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("key_id", nargs="?", metavar="KEY_ID", help="key id (from key list)")
    which.add_argument("--key", dest="key_option", metavar="KEY_ID", help="the same, as an option")
    revoke.add_argument("--workspace", help="refuse the key unless it belongs to this workspace")
    revoke.set_defaults(func=_admin(_key_revoke))
