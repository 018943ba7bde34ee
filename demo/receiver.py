"""The demo's webhook receiver: verifies every delivery and counts the events.

It is what a customer would run: an aiohttp endpoint that checks the Standard
Webhooks signature with the `standardwebhooks` package before it trusts a body,
answers 204 to a good delivery and 401 to a bad one, and counts each event once
by its id (a retried delivery carries the same events again).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PATH = "/hooks/logfill"


@dataclass
class WebhookReceiver:
    """Counts deliveries (verified or not) and distinct events of verified ones."""

    secret: str | None = None
    deliveries: int = 0
    verified: int = 0
    rejected: int = 0
    event_ids: set[str] = field(default_factory=set)
    url: str = ""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def events(self) -> int:
        return len(self.event_ids)

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        if self.secret is None:
            return None
        try:
            payload: dict[str, Any] = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return None
        return payload

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.deliveries += 1
        payload = self._verify(body, headers)
        if payload is None:
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        self.verified += 1
        self.event_ids.update(str(event["id"]) for event in payload["events"])
        self._arrived.set()
        return web.Response(status=204)

    async def wait_for_events(self, count: int, timeout: float) -> bool:
        """True once `count` distinct events arrived; False after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while self.events < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False
        return True


async def start_receiver(receiver: WebhookReceiver, host: str = "127.0.0.1") -> web.AppRunner:
    """Serve `receiver` on a free port of `host`; sets `receiver.url`."""
    app = web.Application()
    app.router.add_post(PATH, receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://{host}:{port}{PATH}"
    return runner
