"""An operator's API keys: several per workspace, listed by prefix only, revoked for good."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from indexer import accounts
from indexer.db.pool import connect
from indexer.errors import InvalidInput, NotFound
from tests.support.api import Tenant, expect_problem, make_tenant, serve

UNKNOWN = uuid.UUID(int=7)


async def _works(conn: asyncpg.Connection, api_key: str) -> bool:
    return await accounts.find_api_key(conn, accounts.hash_api_key(api_key)) is not None


async def test_a_second_key_works_beside_the_first(conn: asyncpg.Connection) -> None:
    tenant = await make_tenant(conn)
    key = await accounts.create_api_key(conn, tenant.workspace_id, name=" ci ")
    assert (key.workspace_id, key.name) == (tenant.workspace_id, "ci")
    assert key.api_key.startswith("lf_") and key.api_key != tenant.api_key
    assert key.prefix == key.api_key[:10]
    assert await _works(conn, tenant.api_key) and await _works(conn, key.api_key)
    dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM api_keys t")
    assert key.api_key not in dump


async def test_a_key_for_an_unknown_workspace_is_not_found_and_writes_nothing(
    conn: asyncpg.Connection,
) -> None:
    with pytest.raises(NotFound, match=f"no workspace {UNKNOWN}"):
        await accounts.create_api_key(conn, UNKNOWN)
    assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [("  ", "key name must not be empty"), ("x" * 201, "key name must be at most 200")],
)
async def test_a_bad_key_name_is_refused(conn: asyncpg.Connection, name: str, message: str) -> None:
    tenant = await make_tenant(conn)
    with pytest.raises(InvalidInput, match=message):
        await accounts.create_api_key(conn, tenant.workspace_id, name=name)
    assert await conn.fetchval("SELECT count(*) FROM api_keys") == 1


async def test_the_list_shows_a_workspaces_keys_revoked_ones_too_never_a_key(
    conn: asyncpg.Connection,
) -> None:
    tenant, other = await make_tenant(conn), await make_tenant(conn)
    second = await accounts.create_api_key(conn, tenant.workspace_id, name="ci")
    await accounts.revoke_api_key(conn, second.id)
    keys = await accounts.list_api_keys(conn, tenant.workspace_id)
    assert [(k.name, k.prefix, k.revoked_at is None) for k in keys] == [
        (None, tenant.api_key[:10], True),
        ("ci", second.prefix, False),
    ]
    assert other.api_key[:10] not in {k.prefix for k in keys}
    assert not any(tenant.api_key in str(k) or second.api_key in str(k) for k in keys)


async def test_listing_an_unknown_workspaces_keys_is_not_found(conn: asyncpg.Connection) -> None:
    with pytest.raises(NotFound, match=f"no workspace {UNKNOWN}"):
        await accounts.list_api_keys(conn, UNKNOWN)


async def test_a_revoked_key_is_refused_and_the_other_keeps_working(
    conn: asyncpg.Connection,
) -> None:
    tenant = await make_tenant(conn)
    second = await accounts.create_api_key(conn, tenant.workspace_id)
    revoked = await accounts.revoke_api_key(conn, second.id)
    assert (revoked.id, revoked.already_revoked) == (second.id, False)
    assert revoked.revoked_at is not None
    assert not await _works(conn, second.api_key)
    assert await _works(conn, tenant.api_key)


async def test_revoking_twice_keeps_the_first_time_and_says_so(conn: asyncpg.Connection) -> None:
    tenant = await make_tenant(conn)
    key = await accounts.create_api_key(conn, tenant.workspace_id)
    first = await accounts.revoke_api_key(conn, key.id)
    again = await accounts.revoke_api_key(conn, key.id, workspace_id=tenant.workspace_id)
    assert again.already_revoked is True
    assert again.revoked_at == first.revoked_at


async def test_two_revokes_at_once_tell_one_of_them_it_was_already_done(
    conn: asyncpg.Connection, database_url: str
) -> None:
    tenant = await make_tenant(conn)
    key = await accounts.create_api_key(conn, tenant.workspace_id)
    other = await connect(database_url)
    try:
        async with conn.transaction():
            first = await accounts.revoke_api_key(conn, key.id)
            second_task = asyncio.create_task(accounts.revoke_api_key(other, key.id))
            await asyncio.sleep(0.2)  # the second waits on the row lock
            assert not second_task.done()
        second = await second_task
    finally:
        await other.close()
    assert (first.already_revoked, second.already_revoked) == (False, True)
    assert second.revoked_at == first.revoked_at


async def test_an_unknown_key_or_one_of_another_workspace_is_not_found(
    conn: asyncpg.Connection,
) -> None:
    owner, other = await make_tenant(conn), await make_tenant(conn)
    with pytest.raises(NotFound, match=f"^no API key {UNKNOWN}$"):
        await accounts.revoke_api_key(conn, UNKNOWN)
    [key] = await accounts.list_api_keys(conn, owner.workspace_id)
    with pytest.raises(NotFound, match=f"no API key {key.id} in workspace {other.workspace_id}"):
        await accounts.revoke_api_key(conn, key.id, workspace_id=other.workspace_id)
    assert await _works(conn, owner.api_key)


async def test_workspaces_are_listed_oldest_first_with_their_active_keys(
    conn: asyncpg.Connection,
) -> None:
    first, second = await make_tenant(conn, plan="free"), await make_tenant(conn, credits=5)
    extra = await accounts.create_api_key(conn, first.workspace_id)
    await accounts.create_api_key(conn, first.workspace_id)
    await accounts.revoke_api_key(conn, extra.id)
    await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1", second.workspace_id
    )
    listed = await accounts.list_workspaces(conn)
    assert [(w.id, w.plan, w.credits, w.active_keys) for w in listed] == [
        (first.workspace_id, "free", 100, 2),
        (second.workspace_id, "pro", 5, 0),
    ]


async def test_the_api_refuses_a_revoked_key_once_its_cache_period_is_over(
    conn: asyncpg.Connection, database_url: str
) -> None:
    kept = await make_tenant(conn)
    created = await accounts.create_api_key(conn, kept.workspace_id)
    revoked = Tenant(kept.workspace_id, created.api_key)
    async with serve(database_url, api_key_cache_seconds=0.5) as client:
        assert (await client.get("/v1/workspace", headers=kept.headers)).status == 200
        assert (await client.get("/v1/workspace", headers=revoked.headers)).status == 200
        await accounts.revoke_api_key(conn, created.id)
        await asyncio.sleep(0.6)
        await expect_problem(await client.get("/v1/workspace", headers=revoked.headers), 401)
        assert (await client.get("/v1/workspace", headers=kept.headers)).status == 200
