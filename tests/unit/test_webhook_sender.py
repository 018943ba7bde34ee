"""One delivery attempt over httpx, mocked with respx: headers, signature bytes, outcomes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import respx
from standardwebhooks.webhooks import Webhook

from indexer.webhooks.retry import Attempt, Failure
from indexer.webhooks.sender import attempt_delivery, build_client, read_capped
from indexer.webhooks.signing import sign
from tests.support.webhooks import SECRET, payload_of, webhook_settings

URL = "https://hooks.example.com/logfill"
PAYLOAD = payload_of(uuid.UUID(int=7), 2)
SETTINGS = webhook_settings(webhook_allow_private=False)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_client(SETTINGS) as client:
        yield client


async def send(client: httpx.AsyncClient, **kw: Any) -> Attempt:
    values: dict[str, Any] = {
        "message_id": "msg_1",
        "url": URL,
        "secrets": [SECRET],
        "payload": PAYLOAD,
        "settings": SETTINGS,
        **kw,
    }
    return await attempt_delivery(client, **values)


@respx.mock
async def test_headers_and_signature_bytes(client: httpx.AsyncClient) -> None:
    route = respx.post(URL).respond(204)
    attempt = await send(client, timestamp=1_700_000_000)
    assert attempt == Attempt(status_code=204)
    request = route.calls.last.request
    body = request.content
    assert body == orjson.dumps(PAYLOAD)  # compact JSON, exactly what was signed
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["webhook-timestamp"] == "1700000000"
    assert request.headers["webhook-signature"] == sign(SECRET, "msg_1", 1_700_000_000, body)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["user-agent"].startswith("logfill-webhooks/")


@respx.mock
async def test_the_standardwebhooks_package_verifies_a_live_attempt(
    client: httpx.AsyncClient,
) -> None:
    route = respx.post(URL).respond(200)
    await send(client)
    request = route.calls.last.request
    Webhook(SECRET).verify(request.content, dict(request.headers))
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5


@respx.mock
async def test_the_id_is_stable_and_the_timestamp_is_the_attempts(
    client: httpx.AsyncClient,
) -> None:
    route = respx.post(URL).respond(500)
    await send(client, timestamp=1)
    await send(client, timestamp=2)
    first, second = (call.request.headers for call in route.calls)
    assert first["webhook-id"] == second["webhook-id"] == "msg_1"
    assert (first["webhook-timestamp"], second["webhook-timestamp"]) == ("1", "2")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200), Attempt(status_code=200)),
        (httpx.Response(202, text="queued"), Attempt(status_code=202)),
        (httpx.Response(500, text="oops"), Attempt(status_code=500, error="HTTP 500: oops")),
        (httpx.Response(404), Attempt(status_code=404, error="HTTP 404")),
        (
            httpx.Response(410, text="gone"),
            Attempt(status_code=410, error="HTTP 410: gone"),
        ),
        (
            httpx.Response(429, headers={"retry-after": "30"}),
            Attempt(status_code=429, retry_after="30", error="HTTP 429"),
        ),
        (
            httpx.Response(503, headers={"retry-after": "Wed, 01 Jan 2025 00:00:00 GMT"}),
            Attempt(status_code=503, retry_after="Wed, 01 Jan 2025 00:00:00 GMT", error="HTTP 503"),
        ),
        (
            httpx.Response(301, headers={"location": "https://other.example/"}),
            Attempt(
                status_code=301, error="HTTP 301: redirect to https://other.example/ not followed"
            ),
        ),
    ],
)
@respx.mock
async def test_answers(
    client: httpx.AsyncClient, response: httpx.Response, expected: Attempt
) -> None:
    respx.post(URL).mock(return_value=response)
    assert await send(client) == expected


@pytest.mark.parametrize(
    ("exception", "failure", "error"),
    [
        (httpx.ConnectTimeout("x"), Failure.TIMEOUT, "timeout: no connection within 1.0 s"),
        (httpx.ReadTimeout("x"), Failure.TIMEOUT, "timeout: no answer within 1.0 s"),
        (httpx.ConnectError("connection refused"), Failure.NETWORK, "network: connection refused"),
        (httpx.RemoteProtocolError("bad"), Failure.NETWORK, "network: bad"),
        (httpx.ReadError(""), Failure.NETWORK, "network: ReadError"),
    ],
)
@respx.mock
async def test_exceptions(
    client: httpx.AsyncClient, exception: Exception, failure: Failure, error: str
) -> None:
    respx.post(URL).mock(side_effect=exception)
    assert await send(client) == Attempt(failure=failure, error=error)


@respx.mock
async def test_a_redirect_is_reported_not_followed(client: httpx.AsyncClient) -> None:
    respx.post(URL).respond(307, headers={"location": "https://hooks.example.com/moved"})
    moved = respx.post("https://hooks.example.com/moved").respond(200)
    attempt = await send(client)
    assert attempt.status_code == 307 and not attempt.delivered
    assert not moved.called
    assert client.follow_redirects is False


class Endless(httpx.AsyncByteStream):
    """An answer that never ends."""

    def __init__(self) -> None:
        self.chunks = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.chunks += 1
            yield b"x" * 1024


async def test_at_most_a_few_kilobytes_of_an_answer_are_read() -> None:
    stream = Endless()
    answer = await read_capped(httpx.Response(500, stream=stream))
    assert len(answer) == 4096
    assert stream.chunks == 4  # stopped reading right at the cap
