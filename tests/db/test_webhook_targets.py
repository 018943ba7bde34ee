"""Webhook URLs are checked when they are set: internal targets are a 422 naming /webhook_url.

The API runs on a real PostgreSQL with the fake resolver of tests.support.webhooks
(names under .test and example.com; `INTERNAL_NAMES` answer internal addresses),
so nothing here depends on real DNS. The domain function is also called directly:
the check is there, not in the HTTP handler, so every caller gets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from indexer import subscriptions
from indexer.refusals import InvalidFields
from indexer.subscriptions import SubscriptionSpec, WebhookTargets
from tests.support.api import (
    CHAIN_ID,
    Client,
    Tenant,
    body,
    create_subscription,
    expect_problem,
    serve,
)
from tests.support.factories import make_workspace
from tests.support.webhooks import FakeDns

REFUSED = [
    ("http://hooks.example.com/h", "webhook URL must use https"),
    ("https://127.0.0.1/h", "webhook URL names loopback address 127.0.0.1"),
    # Spellings the system resolver reads as 127.0.0.1 (inet_aton):
    ("https://0177.0.0.1/h", "webhook URL names loopback address 127.0.0.1"),
    ("https://2130706433/h", "webhook URL names loopback address 127.0.0.1"),
    ("https://0x7f.1/h", "webhook URL names loopback address 127.0.0.1"),
    ("https://127.1:8443/h", "webhook URL names loopback address 127.0.0.1"),
    ("https://[::1]/h", "webhook URL names loopback address ::1"),
    (
        "https://[::ffff:127.0.0.1]/h",
        "webhook URL names loopback address 127.0.0.1 (as ::ffff:7f00:1)",
    ),
    ("https://10.0.0.5/h", "webhook URL names private address 10.0.0.5"),
    ("https://012.0.0.5/h", "webhook URL names private address 10.0.0.5"),
    ("https://192.168.1.1/h", "webhook URL names private address 192.168.1.1"),
    ("https://169.254.1.1/h", "webhook URL names link-local address 169.254.1.1"),
    ("https://[fe80::1]/h", "webhook URL names link-local address fe80::1"),
    ("https://100.64.0.1/h", "webhook URL names shared address 100.64.0.1"),
    (
        "https://169.254.169.254/latest/meta-data/",
        "webhook URL names cloud metadata address 169.254.169.254",
    ),
    (
        "https://0xa9.0xfe.0xa9.0xfe/latest",
        "webhook URL names cloud metadata address 169.254.169.254",
    ),
    ("https://[fd00:ec2::254]/", "webhook URL names cloud metadata address fd00:ec2::254"),
    # Host names, resolved by the fake DNS:
    ("https://localhost/h", "webhook host localhost resolves to loopback address 127.0.0.1"),
    ("https://internal.test/h", "webhook host internal.test resolves to private address 10.0.0.5"),
    (
        "https://metadata.test/h",
        "webhook host metadata.test resolves to cloud metadata address 169.254.169.254",
    ),
    ("https://cgnat.test/h", "webhook host cgnat.test resolves to shared address 100.64.1.2"),
    ("https://mixed.test/h", "webhook host mixed.test resolves to private address 10.1.1.1"),
    (
        "https://nowhere.invalid/h",
        "webhook host nowhere.invalid does not resolve (Name or service not known)",
    ),
]


@pytest.mark.parametrize(("url", "detail"), REFUSED)
async def test_an_internal_target_is_refused_when_a_subscription_is_created(
    client: Client, tenant: Tenant, conn: asyncpg.Connection, url: str, detail: str
) -> None:
    response = await client.post(
        "/v1/subscriptions",
        json={"chain_id": CHAIN_ID, "webhook_url": url},
        headers=tenant.headers,
    )
    problem = await expect_problem(response, 422, "validation-error")
    assert problem["errors"] == [{"pointer": "/webhook_url", "detail": detail}]
    assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 0


@pytest.mark.parametrize(("url", "detail"), REFUSED)
async def test_an_internal_target_is_refused_when_a_webhook_url_is_patched(
    client: Client, tenant: Tenant, url: str, detail: str
) -> None:
    sub = await create_subscription(client, tenant, webhook_url="https://hooks.example.com/a")
    path = f"/v1/subscriptions/{sub['id']}"
    response = await client.patch(path, json={"webhook_url": url}, headers=tenant.headers)
    problem = await expect_problem(response, 422, "validation-error")
    assert problem["errors"] == [{"pointer": "/webhook_url", "detail": detail}]
    unchanged = await body(await client.get(path, headers=tenant.headers))
    assert unchanged["webhook_url"] == "https://hooks.example.com/a"


async def test_public_targets_are_accepted_and_resolved_once(
    client: Client, tenant: Tenant
) -> None:
    for url in (
        "https://hooks.example.com/h",
        "https://93.184.215.14:8443/h",
        "https://[2606:4700:4700::1111]/h",
    ):
        created = await create_subscription(client, tenant, webhook_url=url)
        assert created["webhook_url"] == url
    sub = await create_subscription(client, tenant)
    path = f"/v1/subscriptions/{sub['id']}"
    patched = await client.patch(
        path, json={"webhook_url": "https://other.example/h"}, headers=tenant.headers
    )
    assert patched.status == 200
    cleared = await client.patch(path, json={"webhook_url": None}, headers=tenant.headers)
    assert cleared.status == 200  # removing a webhook checks nothing


@pytest.fixture
async def local_client(database_url: str) -> AsyncIterator[Client]:
    async with serve(database_url, webhook_allow_private=True) as test_client:
        yield test_client


async def test_with_private_targets_allowed_only_metadata_and_unresolvable_hosts_are_refused(
    local_client: Client, tenant: Tenant
) -> None:
    for url in ("http://127.0.0.1:9/h", "http://localhost:9/h", "https://internal.test/h"):
        created = await create_subscription(local_client, tenant, webhook_url=url)
        assert created["webhook_url"] == url
    for url, detail in [
        (
            "http://169.254.169.254/latest",
            "webhook URL names cloud metadata address 169.254.169.254",
        ),
        (
            "http://metadata.test/",
            "webhook host metadata.test resolves to cloud metadata address 169.254.169.254",
        ),
        ("http://0.0.0.0:9/h", "webhook URL names unspecified address 0.0.0.0"),
        (
            "http://nowhere.invalid/h",
            "webhook host nowhere.invalid does not resolve (Name or service not known)",
        ),
    ]:
        response = await local_client.post(
            "/v1/subscriptions",
            json={"chain_id": CHAIN_ID, "webhook_url": url},
            headers=tenant.headers,
        )
        problem = await expect_problem(response, 422)
        assert problem["errors"] == [{"pointer": "/webhook_url", "detail": detail}]


# ----------------------------------------------------------------------------- the domain


async def test_the_check_is_in_the_domain_functions_with_a_short_dns_timeout(
    conn: asyncpg.Connection,
) -> None:
    async def slow(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(5)
        return ["93.184.215.14"]

    workspace = await make_workspace(conn)
    targets = WebhookTargets(allow_private=False, resolve=slow, dns_timeout=0.1)
    spec = SubscriptionSpec(chain_id=CHAIN_ID, webhook_url="https://slow.example/h")
    with pytest.raises(InvalidFields) as raised:
        await subscriptions.create_subscription(conn, workspace, spec, [CHAIN_ID], targets=targets)
    assert raised.value.errors[0].pointer == "/webhook_url"
    assert raised.value.errors[0].detail == "webhook host slow.example did not resolve within 0.1 s"

    dns = FakeDns()
    fine = WebhookTargets(allow_private=False, resolve=dns)
    row = await subscriptions.create_subscription(conn, workspace, spec, [CHAIN_ID], targets=fine)
    internal = SubscriptionSpec(
        webhook_url="https://internal.test/h", fields_set=frozenset({"webhook_url"})
    )
    with pytest.raises(InvalidFields) as raised:
        await subscriptions.update_subscription(conn, workspace, row["id"], internal, targets=fine)
    assert raised.value.errors[0].detail == (
        "webhook host internal.test resolves to private address 10.0.0.5"
    )
    assert dns.asked == ["slow.example", "internal.test"]
    after = await subscriptions.get_subscription(conn, workspace, row["id"])
    assert after["webhook_url"] == "https://slow.example/h"
