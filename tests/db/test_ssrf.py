"""The SSRF guard: addresses, URLs, DNS at send time, pinning, and refused deliveries."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import pytest
import respx

from indexer.db.pool import create_pool
from indexer.webhooks.dispatcher import delivering
from indexer.webhooks.retry import Attempt, Failure
from indexer.webhooks.sender import attempt_delivery, build_client
from indexer.webhooks.ssrf import WebhookRefused, check_url, literal_address, refusal_reason
from tests.support.factories import make_workspace
from tests.support.webhooks import (
    SECRET,
    delivery_row,
    insert_delivery,
    receiver,
    wait_until,
    webhook_settings,
)
from tests.support.window import create_subscription

STRICT = webhook_settings(webhook_allow_private=False)
LOCAL = webhook_settings(webhook_allow_private=True)


@pytest.mark.parametrize(
    ("address", "strict", "allow_private"),
    [
        ("8.8.8.8", None, None),
        ("2606:4700:4700::1111", None, None),
        ("127.0.0.1", "loopback address 127.0.0.1", None),
        ("::1", "loopback address ::1", None),
        ("::ffff:127.0.0.1", "loopback address 127.0.0.1 (as ::ffff:7f00:1)", None),
        ("::ffff:8.8.8.8", None, None),
        ("10.0.0.5", "private address 10.0.0.5", None),
        ("172.16.3.4", "private address 172.16.3.4", None),
        ("192.168.1.1", "private address 192.168.1.1", None),
        ("fd12::1", "private address fd12::1", None),
        ("fe80::1", "link-local address fe80::1", None),
        ("169.254.1.1", "link-local address 169.254.1.1", None),
        ("100.64.0.1", "shared address 100.64.0.1", None),
        ("192.0.2.1", "private address 192.0.2.1", None),  # TEST-NET-1 (documentation)
        ("64:ff9b::a00:5", "private address 10.0.0.5 (as 64:ff9b::a00:5)", None),
        ("2002:a00:5::1", "private address 10.0.0.5 (as 2002:a00:5::1)", None),
        # Refused even where private targets are allowed:
        ("169.254.169.254", "cloud metadata address 169.254.169.254", "same"),
        (
            "::ffff:169.254.169.254",
            "cloud metadata address 169.254.169.254 (as ::ffff:a9fe:a9fe)",
            "same",
        ),
        ("fd00:ec2::254", "cloud metadata address fd00:ec2::254", "same"),
        ("168.63.129.16", "cloud metadata address 168.63.129.16", "same"),
        ("100.100.100.200", "cloud metadata address 100.100.100.200", "same"),
        ("0.0.0.0", "unspecified address 0.0.0.0", "same"),
        ("::", "unspecified address ::", "same"),
        ("224.0.0.1", "multicast address 224.0.0.1", "same"),
    ],
)
def test_refusal_reason(address: str, strict: str | None, allow_private: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal_reason(ip) == strict
    expected = strict if allow_private == "same" else allow_private
    assert refusal_reason(ip, allow_private=True) == expected


@pytest.mark.parametrize(
    ("url", "allow_private", "error"),
    [
        ("https://hooks.example.com/x", False, None),
        ("http://hooks.example.com/x", False, "refused: webhook URL must use https"),
        ("http://hooks.example.com/x", True, None),
        ("ftp://hooks.example.com/x", True, "refused: webhook URL must use https or http"),
        ("https://127.0.0.1/x", False, "refused: webhook URL names loopback address 127.0.0.1"),
        ("https://127.0.0.1/x", True, None),
        (
            "https://[::ffff:127.0.0.1]/x",
            False,
            "refused: webhook URL names loopback address 127.0.0.1 (as ::ffff:7f00:1)",
        ),
        (
            "http://169.254.169.254/latest/meta-data",
            True,
            "refused: webhook URL names cloud metadata address 169.254.169.254",
        ),
        ("https:///x", False, "refused: webhook URL has no host"),
    ],
)
def test_check_url(url: str, allow_private: bool, error: str | None) -> None:
    if error is None:
        check_url(url, allow_private=allow_private)
    else:
        with pytest.raises(WebhookRefused) as raised:
            check_url(url, allow_private=allow_private)
        assert str(raised.value) == error


NUMERIC_HOSTS = [
    "127.0.0.1", "0177.0.0.1", "2130706433", "0x7f.1", "127.1", "017700000001", "0x7f000001",
    "0xa9.0xfe.0xa9.0xfe", "012.0.0.5", "0xff", "0", "10", "1.2.3", "::1", "::ffff:127.0.0.1",
    # Not numbers, for the system either: names (which then go to DNS).
    "127.0.0.1.", "1.2.3.4.5", "08.0.0.1", "deadbeef", "4294967296", "0x100000000",
    "256.0.0.1", "1.0x1000000", "0x", "hooks.example.com", "1e100.net",
]  # fmt: skip


@pytest.mark.parametrize("host", NUMERIC_HOSTS)
def test_a_numeric_host_is_the_address_the_system_resolver_reads(host: str) -> None:
    # AI_NUMERICHOST: the system's own reading of a host as a number, with no DNS.
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        system = {ipaddress.ip_address(info[4][0]) for info in infos}
    except socket.gaierror:
        system = set()
    literal = literal_address(host)
    assert ({literal} if literal is not None else set()) == system


class FakeDns:
    """A resolver with set answers, counting the questions."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.answers[host]


async def send(client: httpx.AsyncClient, url: str, settings: object = STRICT) -> Attempt:
    return await attempt_delivery(
        client,
        message_id="msg_1",
        url=url,
        secrets=[SECRET],
        payload={"type": "backfill.matches", "events": []},
        settings=STRICT if settings is STRICT else LOCAL,
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/hook",
        "https://10.1.2.3/hook",
        "https://0x7f.1/hook",
        "https://2130706433/hook",
        "https://0177.0.0.1/hook",
    ],
)
@respx.mock(assert_all_called=False)
async def test_literal_internal_addresses_are_refused_unsent(
    url: str, respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.route().respond(200)
    async with build_client(STRICT) as client:
        attempt = await send(client, url)
    assert attempt.failure is Failure.REFUSED
    assert attempt.error is not None and attempt.error.startswith("refused: webhook URL names ")
    assert not route.called


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        (["10.0.0.5"], "refused: webhook host hook.internal resolves to private address 10.0.0.5"),
        (
            ["93.184.215.14", "10.0.0.5"],  # one bad address is enough
            "refused: webhook host hook.internal resolves to private address 10.0.0.5",
        ),
        (
            ["169.254.169.254"],
            "refused: webhook host hook.internal resolves to cloud metadata address "
            "169.254.169.254",
        ),
        (
            ["::ffff:127.0.0.1"],
            "refused: webhook host hook.internal resolves to loopback address 127.0.0.1 "
            "(as ::ffff:7f00:1)",
        ),
    ],
)
async def test_a_host_resolving_to_an_internal_address_is_refused_at_send_time(
    answers: list[str], error: str
) -> None:
    dns = FakeDns({"hook.internal": answers})
    async with build_client(STRICT, resolve=dns) as client:
        first = await send(client, "https://hook.internal/x")
        second = await send(client, "https://hook.internal/x")
    assert first == second == Attempt(failure=Failure.REFUSED, error=error)
    assert dns.asked == ["hook.internal", "hook.internal"]  # asked again at each attempt


async def test_a_name_that_does_not_resolve_is_a_retryable_network_failure() -> None:
    async def nxdomain(host: str, port: int) -> Sequence[str]:
        raise OSError(-2, "Name or service not known")

    async with build_client(STRICT, resolve=nxdomain) as client:
        attempt = await send(client, "https://nowhere.invalid/x")
    assert attempt.failure is Failure.NETWORK
    assert attempt.error is not None and "cannot resolve nowhere.invalid" in attempt.error


async def test_the_connection_goes_to_the_checked_address_with_the_hosts_name() -> None:
    async with receiver() as hook:
        dns = FakeDns({"hook.test": ["127.0.0.1"]})
        async with build_client(LOCAL, resolve=dns) as client:
            attempt = await send(client, f"http://hook.test:{hook.port}/hook", LOCAL)
    assert attempt == Attempt(status_code=204)
    (received,) = hook.received
    assert received.headers["host"] == f"hook.test:{hook.port}"  # Host (and SNI) keep the name
    assert received.verified


@respx.mock(assert_all_called=False)
async def test_a_redirect_to_an_internal_address_is_not_followed(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.post("https://hooks.example.com/x").respond(
        302, headers={"location": "http://169.254.169.254/latest/meta-data/"}
    )
    metadata = respx_mock.route(host="169.254.169.254").respond(200)
    async with build_client(STRICT) as client:
        attempt = await send(client, "https://hooks.example.com/x")
    assert not metadata.called
    assert attempt.status_code == 302
    assert attempt.error == (
        "HTTP 302: redirect to http://169.254.169.254/latest/meta-data/ not followed"
    )


# ----------------------------------------------------------------------------- deliveries


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4, timeout=10)
    yield pool
    await pool.close()


async def test_refused_deliveries_are_dead_at_once_with_the_reason(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    async with receiver() as hook:
        workspace = await make_workspace(conn)
        urls = {
            hook.url(): "refused: webhook URL must use https",
            f"https://127.0.0.1:{hook.port}/hook": (
                "refused: webhook URL names loopback address 127.0.0.1"
            ),
        }
        ids = {}
        for url, error in urls.items():
            sub = await create_subscription(conn, workspace, webhook_url=url)
            ids[await insert_delivery(conn, sub)] = error

        async def all_dead() -> bool:
            rows = [await delivery_row(conn, i) for i in ids]
            return all(row["status"] == "dead" for row in rows)

        async with delivering(STRICT.model_copy(update={"webhook_poll_seconds": 0.05}), pool):
            await wait_until(all_dead)
        assert hook.received == []
    for delivery_id, error in ids.items():
        row = await delivery_row(conn, delivery_id)
        assert (row["attempts"], row["last_error"], row["last_status_code"]) == (1, error, None)


async def test_a_numeric_spelling_connects_to_the_address_it_was_checked_as() -> None:
    dns = FakeDns({})
    async with receiver() as hook, build_client(LOCAL, resolve=dns) as client:
        attempt = await send(client, f"http://0x7f.1:{hook.port}/hook", LOCAL)
    assert attempt == Attempt(status_code=204)
    assert dns.asked == []  # a number, never a name to look up
