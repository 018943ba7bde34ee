"""Helpers for webhook tests: a real aiohttp receiver, outbox rows, fast settings, fake DNS."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from indexer.settings import Settings

SECRET = "whsec_dGVzdHNlY3JldA=="  # tests.support.window.create_subscription's
FAST_SCHEDULE = (0, 0.2, 0.4, 0.6, 0.8)
# A global unicast address (no test ever connects to it): what the fake DNS answers
# for the example names tests set as webhook URLs.
PUBLIC_ADDRESS = "93.184.215.14"

Handler = Callable[["Received"], Awaitable[web.StreamResponse]]


def webhook_settings(**overrides: Any) -> Settings:
    """Settings for delivery tests: local targets allowed, a fast schedule, no jitter."""
    values: dict[str, Any] = {
        "worker_metrics_port": 0,
        "webhook_allow_private": True,
        "webhook_retry_schedule": FAST_SCHEDULE,
        "webhook_retry_jitter": 0,
        "webhook_poll_seconds": 0.05,
        "webhook_timeout_seconds": 1.0,
        "webhook_connect_timeout_seconds": 1.0,
        "webhook_lease_seconds": 3.0,
        **overrides,
    }
    return Settings(**values)


@dataclass
class Received:
    """One request the receiver got, and whether its signature verified."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    wall: float  # time.time()
    verified: bool
    peer_port: int = 0  # the client's end of the connection

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.body)
        return result


async def accept(_: Received) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 that verifies every signature with `standardwebhooks`.

    `handlers` maps a path to what answers it (default: 204). Every request is kept
    in `received`, whatever the answer.
    """

    secrets: list[str] = field(default_factory=lambda: [SECRET])
    handlers: dict[str, Handler] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        received = Received(
            request.path,
            headers,
            body,
            time.monotonic(),
            time.time(),
            self.verify(body, headers),
            peer[1] if peer else 0,
        )
        self.received.append(received)
        self.arrived.set()
        return await self.handlers.get(request.path, accept)(received)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, count: int, path: str = "/hook", timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.at(path)) < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def receiver(**fields: Any) -> AsyncIterator[Receiver]:
    target = Receiver(**fields)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    target.port = server.sockets[0].getsockname()[1]
    try:
        yield target
    finally:
        await runner.cleanup()


def payload_of(subscription_id: uuid.UUID, events: int, first_block: int = 1) -> dict[str, Any]:
    """A body like the window's, with `events` small events from `first_block` on."""
    return {
        "type": "backfill.matches",
        "subscription_id": str(subscription_id),
        "backfill_id": None,
        "chain_id": 1,
        "events": [
            {
                "id": f"evt_{first_block + i:032x}",
                "block_number": first_block + i,
                "block_hash": "0x" + "ab" * 32,
                "transaction_hash": "0x" + "cd" * 32,
                "transaction_index": 0,
                "log_index": i,
                "address": "0x" + "11" * 20,
                "topics": ["0x" + "22" * 32],
                "data": "0x",
            }
            for i in range(events)
        ],
    }


async def insert_delivery(
    conn: asyncpg.Connection | asyncpg.Pool,
    subscription_id: uuid.UUID,
    *,
    events: int = 2,
    first_block: int = 1,
) -> uuid.UUID:
    """One pending outbox row, as the window writes it."""
    delivery_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO webhook_deliveries (subscription_id, workspace_id, payload, event_count,
                                        first_block)
        SELECT id, workspace_id, $2, $3, $4 FROM subscriptions WHERE id = $1
        RETURNING id
        """,
        subscription_id,
        payload_of(subscription_id, events, first_block),
        events,
        first_block,
    )
    return delivery_id


async def delivery_row(conn: asyncpg.Connection, delivery_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1", delivery_id)
    assert row is not None
    return row


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, every: float = 0.05
) -> None:
    """Poll `check` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


# Names the fake DNS answers with internal addresses (RFC 2606 .test names, and localhost).
INTERNAL_NAMES: dict[str, Sequence[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "internal.test": ["10.0.0.5"],
    "metadata.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.1.2"],
    "mixed.test": [PUBLIC_ADDRESS, "10.1.1.1"],  # one public, one private answer
}


class FakeDns:
    """A resolver with set answers, counting the questions; unknown names do not resolve.

    Names under example.com, .example and .test resolve to `PUBLIC_ADDRESS` (RFC
    2606 names, what the tests give as webhook URLs), except `INTERNAL_NAMES`; API
    tests never depend on real DNS.
    """

    def __init__(self, answers: dict[str, Sequence[str]] | None = None) -> None:
        self.answers = {**INTERNAL_NAMES, **(answers or {})}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host in self.answers:
            return self.answers[host]
        if host == "example.com" or host.endswith((".example.com", ".example", ".test")):
            return [PUBLIC_ADDRESS]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def set_ordering(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, ordering: str
) -> uuid.UUID:
    """Set a subscription's `webhook_ordering` ("strict" or "independent")."""
    await conn.execute(
        "UPDATE subscriptions SET webhook_ordering = $2 WHERE id = $1", subscription_id, ordering
    )
    return subscription_id
