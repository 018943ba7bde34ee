"""One delivery attempt over HTTP: sign, POST, read a little of the answer, classify.

The client never follows redirects, ignores proxy environment variables (a
proxy would connect for us, past the SSRF guard), connects only through
`GuardedBackend`, and reads at most `MAX_ANSWER_BYTES` of an answer: a receiver
cannot make a worker hold a large or endless body. The whole attempt runs
under one wall-clock timeout, so a slow receiver costs one in-flight slot for
at most that long and never blocks deliveries to others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpcore
import httpx

from indexer.outbox.bodies import delivery_body
from indexer.settings import Settings
from indexer.webhooks.retry import Attempt, Failure
from indexer.webhooks.signing import webhook_headers
from indexer.webhooks.ssrf import (
    GuardedBackend,
    Resolver,
    WebhookRefused,
    check_url,
    system_resolve,
)

MAX_ANSWER_BYTES = 4096
ERROR_EXCERPT_CHARS = 200
USER_AGENT = "logfill-webhooks/1"


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on `GuardedBackend`.

    httpx 0.28 has no parameter for the network backend, so the pool it builds is
    replaced by an equivalent one that has it (httpx #3749 proposes the parameter).
    """

    def __init__(self, *, allow_private: bool, resolve: Resolver, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private, resolve=resolve),
        )


def build_client(settings: Settings, *, resolve: Resolver = system_resolve) -> httpx.AsyncClient:
    """The worker's one client: connections to a receiver are reused across deliveries."""
    in_flight = settings.webhook_max_in_flight
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    return httpx.AsyncClient(
        transport=GuardedTransport(
            allow_private=settings.webhook_allow_private, resolve=resolve, limits=limits
        ),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(
            settings.webhook_timeout_seconds, connect=settings.webhook_connect_timeout_seconds
        ),
        headers={"user-agent": USER_AGENT},
    )


def request_headers(
    message_id: str, secrets: list[str], timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        # Compressed answers could inflate past the read cap; ask for none.
        "accept-encoding": "identity",
        **webhook_headers(secrets, message_id, timestamp, body),
    }


def excerpt(answer: bytes) -> str:
    """A short, one-line piece of a receiver's answer, fit for `last_error`."""
    text = " ".join(answer.decode("utf-8", "replace").split())
    if len(text) > ERROR_EXCERPT_CHARS:
        text = text[:ERROR_EXCERPT_CHARS] + "..."
    return text


def answered(status_code: int, headers: Mapping[str, str], answer: bytes) -> Attempt:
    """An attempt that got an HTTP status, and how `last_error` describes it."""
    if 200 <= status_code < 300:
        return Attempt(status_code=status_code)
    if 300 <= status_code < 400:
        location = headers.get("location", "(no location)")
        error = f"HTTP {status_code}: redirect to {location} not followed"
    else:
        error = f"HTTP {status_code}: {excerpt(answer)}".rstrip(": ")
    return Attempt(status_code=status_code, retry_after=headers.get("retry-after"), error=error)


async def read_capped(response: httpx.Response, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """At most `limit` bytes of the body; the rest is never read (the connection closes)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> Attempt:
    async with client.stream("POST", url, content=body, headers=headers) as response:
        answer = await read_capped(response)
    return answered(response.status_code, response.headers, answer)


async def attempt_delivery(
    client: httpx.AsyncClient,
    *,
    message_id: str,
    url: str,
    secrets: list[str],
    payload: Mapping[str, Any],
    settings: Settings,
    timestamp: int | None = None,
) -> Attempt:
    """Sign and POST one delivery; every way it can fail becomes an `Attempt`."""
    timeout = settings.webhook_timeout_seconds
    try:
        check_url(url, allow_private=settings.webhook_allow_private)
        body = delivery_body(payload)
        headers = request_headers(message_id, secrets, timestamp or int(time.time()), body)
        async with asyncio.timeout(timeout):
            return await post(client, url, body, headers)
    except WebhookRefused as exc:
        return Attempt(failure=Failure.REFUSED, error=str(exc))
    except httpx.InvalidURL as exc:
        return Attempt(failure=Failure.REFUSED, error=f"refused: invalid webhook URL: {exc}")
    except httpx.ConnectTimeout:
        connect = settings.webhook_connect_timeout_seconds
        return Attempt(failure=Failure.TIMEOUT, error=f"timeout: no connection within {connect} s")
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(failure=Failure.TIMEOUT, error=f"timeout: no answer within {timeout} s")
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        return Attempt(failure=Failure.NETWORK, error=f"network: {detail}")
