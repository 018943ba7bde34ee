"""Every client error is problem+json, and none of them puts a traceback in the log.

Malformed requests are sent as raw bytes (no HTTP client would send them) to the
API served the way `logfill api` serves it (`ProblemRunner`), with logging set
up as the command sets it up, so the test reads what an operator would read.
"""

from __future__ import annotations

import asyncio
import io
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest
import structlog
from aiohttp import web
from multidict import CIMultiDict

from api.app import create_app
from api.problems import ProblemRunner
from indexer.logging import configure_logging
from tests.support.api import (
    PROBLEM,
    Client,
    Tenant,
    api_settings,
    body,
    create_subscription,
    expect_problem,
    make_tenant,
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == PROBLEM, (self.status, self.body)
        data: dict[str, Any] = orjson.loads(self.body)
        assert data["status"] == self.status and data["title"]
        return data


@dataclass(frozen=True)
class Served:
    port: int

    async def send(self, raw: bytes) -> Answer:
        """Write `raw` on a new connection; the answer, read until the server closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            await writer.drain()
            async with asyncio.timeout(10):
                data = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        head, _, content = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Answer(int(status_line.split()[1]), headers, content)


class Logs:
    """What logfill logs, as `logfill api` sets logging up (JSON lines), DEBUG included."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        """The lines logged since the last call; none of them may carry a traceback."""
        text = self.stream.getvalue()
        self.stream.seek(0)
        self.stream.truncate()
        assert "Traceback" not in text, text
        return [orjson.loads(line) for line in text.splitlines()]


@pytest.fixture
def logs() -> Iterator[Logs]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    captured = Logs()
    configure_logging("debug", "json")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured.stream)
    try:
        yield captured
    finally:
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    runner = ProblemRunner(create_app(api_settings(), database_url=database_url), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Served(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def get(path: str = "/healthz", *headers: bytes) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(headers) + b"\r\n"


MALFORMED = {
    "header over 8 KiB": (get("/healthz", b"X-Big: " + b"a" * 9000 + b"\r\n"), 400),
    "URL over 8 KiB": (get("/" + "a" * 9000), 400),
    "control character in a header": (get("/healthz", b"X-C: a\x01b\r\n"), 400),
    "too many headers": (get("/healthz", *(b"X-%d: 1\r\n" % i for i in range(200))), 400),
    "bad Content-Length": (get("/healthz", b"Content-Length: abc\r\n"), 400),
    "garbage after the version": (b"GET /healthz HTTP/1.1 x\r\nHost: x\r\n\r\n", 400),
    "TLS sent to the HTTP port": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),
    "Content-Encoding zstd": (
        b"POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Encoding: zstd\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
        415,
    ),
}


@pytest.mark.parametrize("raw,status", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_request_the_parser_refuses_is_a_problem_and_one_log_line_at_most(
    served: Served, logs: Logs, raw: bytes, status: int
) -> None:
    logs.lines()  # what start-up logged
    answer = await served.send(raw)
    problem = answer.problem()
    assert answer.status == status
    assert problem["type"].endswith(
        "unsupported-content-encoding" if status == 415 else "malformed-request"
    )
    assert "\\x01" not in problem["detail"] and "aaaa" not in problem["detail"]
    if status == 415:
        assert answer.headers["accept-encoding"] == "gzip, deflate"
    lines = logs.lines()
    assert len(lines) <= 1, lines
    assert all(line["level"] in ("warning", "debug") for line in lines), lines


async def test_the_api_still_answers_on_the_same_port_after_malformed_requests(
    served: Served,
) -> None:
    for raw, _ in MALFORMED.values():
        await served.send(raw)
    answer = await served.send(get("/healthz", b"Connection: close\r\n"))
    assert (answer.status, orjson.loads(answer.body)) == (200, {"status": "ok"})


def post_subscription(tenant: Tenant, encoding: bytes, content: bytes) -> bytes:
    return (
        b"POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + tenant.api_key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Encoding: " + encoding + b"\r\n"
        b"Content-Length: " + str(len(content)).encode() + b"\r\n\r\n" + content
    )


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_a_body_that_is_not_the_compression_it_claims_is_a_400_without_a_traceback(
    served: Served, logs: Logs, conn: asyncpg.Connection, encoding: bytes
) -> None:
    tenant = await make_tenant(conn)
    logs.lines()
    answer = await served.send(post_subscription(tenant, encoding, b"not compressed at all"))
    problem = answer.problem()
    assert (answer.status, problem["type"]) == (400, "https://logfill.dev/problems/malformed-body")
    assert encoding.decode() in problem["detail"]
    lines = logs.lines()
    assert not [line for line in lines if line["level"] not in ("debug", "info")], lines


async def test_a_body_in_the_compression_it_claims_is_read(
    served: Served, conn: asyncpg.Connection
) -> None:
    tenant = await make_tenant(conn)
    payload = orjson.dumps({"chain_id": 1, "addresses": ["0x" + "11" * 20], "topics": [None]})
    answer = await served.send(post_subscription(tenant, b"deflate", zlib.compress(payload)))
    assert answer.status == 201, answer.body


async def test_two_idempotency_keys_are_refused_naming_the_header(
    client: Client, tenant: Tenant
) -> None:
    sub = await create_subscription(client, tenant)
    headers = CIMultiDict(tenant.headers)
    headers.add("Idempotency-Key", "first")
    headers.add("Idempotency-Key", "second")
    payload = {"subscription_id": sub["id"], "from_block": 1, "to_block": 10}
    response = await client.post("/v1/backfill", json=payload, headers=headers)
    problem = await expect_problem(response, 400, "invalid-idempotency-key")
    assert problem["errors"] == [{"header": "Idempotency-Key", "detail": "send exactly one"}]
    assert "2 times" in problem["detail"]
    history = await client.get(f"/v1/subscriptions/{sub['id']}/backfills", headers=tenant.headers)
    assert (await body(history))["items"] == []  # nothing was queued
