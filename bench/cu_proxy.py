"""A JSON-RPC proxy that counts the calls it forwards and what they cost in CU.

Put in front of a node (anvil), it forwards every POST body as it is and answers
the node's bytes unchanged, counting each JSON-RPC call by method (a batch counts
each of its calls). CU are priced like logfill's default `cu_weights`:
eth_getLogs 60, eth_getBlockByNumber 20, eth_blockNumber 10, any other method 10
(logfill's price of an unlisted method). `GET /_counts` answers
`{"calls": {method: n}, "cu": total, "requests": http_requests, "bytes": answered}`;
readers take differences between two reads. `GET /_log` answers `{"requests":
[[unix time, cu], ...]}`: each HTTP request's arrival time and CU, in order, so a
reader can tell which of a client's time spans (a window) spent what.

Run: .venv/bin/python -m bench.cu_proxy --upstream http://127.0.0.1:8545 [--port 0]
     (prints `listening <url>` once it serves; `bench.side_by_side` starts it this way)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

CU_PRICES = {"eth_getLogs": 60, "eth_getBlockByNumber": 20, "eth_blockNumber": 10}
OTHER_METHOD_CU = 10


def cu_of(calls: dict[str, int]) -> int:
    """CU of calls counted by method, at CU_PRICES (other methods OTHER_METHOD_CU)."""
    return sum(CU_PRICES.get(method, OTHER_METHOD_CU) * n for method, n in calls.items())


def methods_of(body: bytes) -> list[str]:
    """The methods of a JSON-RPC request body (one call or a batch); [] if not JSON-RPC."""
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    items = payload if isinstance(payload, list) else [payload]
    return [str(item.get("method")) for item in items if isinstance(item, dict)]


class Counting:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: Counter[str] = Counter()
        self.requests = 0
        self.bytes = 0
        self.log: list[tuple[float, int]] = []  # (arrival, CU) of each HTTP request
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=600)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def stop(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        arrived = time.time()
        body = await request.read()
        methods = methods_of(body)
        self.calls.update(methods)
        self.log.append((arrived, cu_of(Counter(methods))))
        self.requests += 1
        async with self.session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            data = await answer.read()
        self.bytes += len(data)
        return web.Response(body=data, status=answer.status, content_type="application/json")

    async def counts(self, request: web.Request) -> web.Response:
        snapshot: dict[str, Any] = {
            "calls": dict(self.calls),
            "cu": cu_of(self.calls),
            "requests": self.requests,
            "bytes": self.bytes,
        }
        return web.json_response(snapshot)

    async def requests_log(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.log})


def build_app(upstream: str) -> web.Application:
    counting = Counting(upstream)
    app = web.Application(client_max_size=64 * 2**20)
    app.on_startup.append(counting.start)
    app.on_cleanup.append(counting.stop)
    app.router.add_get("/_counts", counting.counts)
    app.router.add_get("/_log", counting.requests_log)
    app.router.add_post("/{tail:.*}", counting.forward)
    return app


async def serve(upstream: str, port: int) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"listening http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the node's JSON-RPC URL")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    asyncio.run(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
