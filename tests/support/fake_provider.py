"""A scripted fake JSON-RPC provider: a real aiohttp server on 127.0.0.1.

Each HTTP request is answered by a *behaviour*: the next one of the script
(a queue, one per HTTP request), else what `rule` returns for the request's
first JSON-RPC call, else a normal answer from a synthetic chain. Every request
is recorded (its calls, batch or not, and when it arrived), and so is how many
were being answered at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

JsonCall = dict[str, Any]
JsonLog = dict[str, Any]

ADDRESS_A = "0x" + "aa" * 20
ADDRESS_B = "0x" + "bb" * 20
ADDRESS_C = "0x" + "cc" * 20
TOPIC0 = "0x" + "ee" * 32


def _hash(*parts: object) -> str:
    return "0x" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def block_hash(number: int) -> str:
    return _hash("block", number)


def _default_density(block: int) -> int:
    return block % 3


@dataclass
class SyntheticChain:
    """A deterministic chain: block `b` holds `logs_per_block(b)` logs."""

    logs_per_block: Callable[[int], int] = _default_density
    addresses: tuple[str, ...] = (ADDRESS_A,)
    head: int = 1_000_000
    finalized: int | None = 999_936

    def block_logs(self, number: int) -> list[JsonLog]:
        return [
            {
                "address": self.addresses[(number + index) % len(self.addresses)],
                "topics": [TOPIC0, "0x" + number.to_bytes(32, "big").hex()],
                "data": "0x" + (number * 1000 + index).to_bytes(32, "big").hex(),
                "blockNumber": hex(number),
                "blockHash": block_hash(number),
                "transactionHash": _hash("tx", number, index),
                "transactionIndex": hex(index),
                "logIndex": hex(index),
                "removed": False,
            }
            for index in range(self.logs_per_block(number))
        ]

    def logs(
        self, from_block: int, to_block: int, addresses: Iterable[str] | None = None
    ) -> list[JsonLog]:
        wanted = {a.lower() for a in addresses} if addresses else None
        return [
            entry
            for number in range(from_block, to_block + 1)
            for entry in self.block_logs(number)
            if wanted is None or entry["address"] in wanted
        ]

    def count(self, from_block: int, to_block: int) -> int:
        return sum(self.logs_per_block(n) for n in range(from_block, to_block + 1))

    def block(self, tag: str) -> dict[str, Any] | None:
        number = {"latest": self.head, "finalized": self.finalized}.get(tag)
        if number is None and tag.startswith("0x"):
            number = int(tag, 16)
        if number is None or number > self.head:
            return None
        return {
            "number": hex(number),
            "hash": block_hash(number),
            "parentHash": block_hash(number - 1),
        }


def log_range(call: JsonCall) -> tuple[int, int]:
    """(fromBlock, toBlock) of an eth_getLogs request object."""
    params = call["params"][0]
    return int(params["fromBlock"], 16), int(params["toBlock"], 16)


def call_addresses(call: JsonCall) -> list[str] | None:
    address = call["params"][0].get("address")
    if address is None:
        return None
    return [address] if isinstance(address, str) else list(address)


@dataclass(frozen=True)
class Received:
    """One HTTP request the fake received."""

    calls: tuple[JsonCall, ...]
    batch: bool
    at: float  # time.monotonic()

    @property
    def methods(self) -> list[str]:
        return [call["method"] for call in self.calls]

    @property
    def method(self) -> str:
        [method] = self.methods
        return method

    @property
    def params(self) -> list[Any]:
        [call] = self.calls
        params: list[Any] = call["params"]
        return params

    @property
    def log_range(self) -> tuple[int, int]:
        [call] = self.calls
        return log_range(call)


@dataclass
class Exchange:
    """What a behaviour sees of one HTTP request."""

    fake: FakeProvider
    request: web.Request
    calls: list[JsonCall]
    batch: bool

    def result(self, call: JsonCall) -> Any:
        """The correct answer of one call on the synthetic chain."""
        chain = self.fake.chain
        method, params = call["method"], call.get("params", [])
        if method == "eth_getLogs":
            start, end = log_range(call)
            return chain.logs(start, end, call_addresses(call))
        if method == "eth_blockNumber":
            return hex(chain.head)
        if method == "eth_getBlockByNumber":
            return chain.block(params[0])
        if method == "eth_chainId":
            return hex(31337)
        raise AssertionError(f"the fake does not answer {method}")

    def reply(self, answers: list[JsonCall], *, status: int = 200) -> web.Response:
        payload: Any = answers if self.batch else answers[0]
        return web.Response(
            body=orjson.dumps(payload), status=status, content_type="application/json"
        )

    def answers(self, results: Callable[[JsonCall], Any] | None = None) -> list[JsonCall]:
        produce = results or self.result
        return [
            {"jsonrpc": "2.0", "id": call.get("id"), "result": produce(call)} for call in self.calls
        ]


Behaviour = Callable[[Exchange], Awaitable[web.StreamResponse]]
Rule = Callable[[JsonCall], Behaviour | None]


# -- behaviours ---------------------------------------------------------------


def answer() -> Behaviour:
    """The correct answer."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        return exchange.reply(exchange.answers())

    return behave


def rpc_error(code: int, message: str, *, status: int = 200, null_id: bool = False) -> Behaviour:
    """A JSON-RPC error object for every call (HTTP 200 unless `status` says otherwise)."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        answers = [
            {
                "jsonrpc": "2.0",
                "id": None if null_id else call.get("id"),
                "error": {"code": code, "message": message},
            }
            for call in exchange.calls
        ]
        return exchange.reply(answers, status=status)

    return behave


def http_error(status: int, *, retry_after: str | None = None, body: bytes = b"") -> Behaviour:
    """A bare HTTP error (no JSON-RPC body unless `body` is one)."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return web.Response(status=status, body=body, headers=headers)

    return behave


def rate_limited(retry_after: str = "2") -> Behaviour:
    return http_error(429, retry_after=retry_after, body=b"Too Many Requests")


def stall(seconds: float = 5.0) -> Behaviour:
    """Answer nothing for `seconds` (or until the fake closes), then answer correctly."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        try:
            await asyncio.wait_for(exchange.fake.closing.wait(), seconds)
        except TimeoutError:
            pass
        return exchange.reply(exchange.answers())

    return behave


def drop() -> Behaviour:
    """Close the connection without answering."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        transport = exchange.request.transport
        assert transport is not None
        transport.abort()
        # Nothing can be sent any more; aiohttp drops whatever is returned.
        return web.Response(status=204)

    return behave


def truncated(keep: float = 0.5) -> Behaviour:
    """HTTP 200 with only a prefix of the correct JSON body."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        payload: Any = exchange.answers()
        body = orjson.dumps(payload if exchange.batch else payload[0])
        return web.Response(
            body=body[: max(1, int(len(body) * keep))], content_type="application/json"
        )

    return behave


def delayed(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Wait, then behave as `then` (a correct answer by default)."""
    after = then or answer()

    async def behave(exchange: Exchange) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await after(exchange)

    return behave


def tampered_logs(tamper: Callable[[list[JsonLog], int, int], list[JsonLog]]) -> Behaviour:
    """A correct answer whose eth_getLogs result is passed through `tamper`."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        def results(call: JsonCall) -> Any:
            result = exchange.result(call)
            if call["method"] != "eth_getLogs":
                return result
            return tamper(result, *log_range(call))

        return exchange.reply(exchange.answers(results))

    return behave


def with_results(produce: Callable[[JsonCall], Any]) -> Behaviour:
    """Answer every call with `produce(call)` as its result (however wrong)."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        return exchange.reply(exchange.answers(produce))

    return behave


def reversed_batch() -> Behaviour:
    """The correct answers of a batch, in reverse order (allowed by JSON-RPC 2.0)."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        answers = exchange.answers()[::-1]
        return web.Response(body=orjson.dumps(answers), content_type="application/json")

    return behave


def lagging(behind: int) -> Behaviour:
    """A node `behind` blocks behind the chain's head, as providers balance calls over
    nodes: it answers eth_getLogs for blocks it has not seen with no logs (not an
    error), a block it has not seen with null, and its own head."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        chain = exchange.fake.chain
        seen = chain.head - behind

        def results(call: JsonCall) -> Any:
            method, params = call["method"], call.get("params", [])
            if method == "eth_getLogs":
                start, end = log_range(call)
                return chain.logs(start, min(end, seen), call_addresses(call))
            if method == "eth_blockNumber":
                return hex(seen)
            if method == "eth_getBlockByNumber" and params[0].startswith("0x"):
                return chain.block(params[0]) if int(params[0], 16) <= seen else None
            return exchange.result(call)

        return exchange.reply(exchange.answers(results))

    return behave


def log_outside_range() -> Behaviour:
    """Adds a log of the block just after the requested range."""

    def tamper(logs: list[JsonLog], start: int, end: int) -> list[JsonLog]:
        outsider = SyntheticChain(logs_per_block=lambda _: 1).block_logs(end + 1)
        return [*logs, *outsider]

    return tampered_logs(tamper)


def null_block_hash() -> Behaviour:
    """Adds a log with `blockHash: null` (a pending log) inside the range."""

    def tamper(logs: list[JsonLog], start: int, end: int) -> list[JsonLog]:
        [pending] = SyntheticChain(logs_per_block=lambda _: 1).block_logs(start)
        pending["blockHash"] = None
        return [*logs, pending]

    return tampered_logs(tamper)


# -- the server ---------------------------------------------------------------


@dataclass
class FakeProvider:
    """`async with FakeProvider(script=[...]) as fake:` then point a client at `fake.url`."""

    script: Iterable[Behaviour] = ()
    rule: Rule | None = None
    chain: SyntheticChain = field(default_factory=SyntheticChain)
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self.queue: deque[Behaviour] = deque(self.script)
        self.closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def push(self, *behaviours: Behaviour) -> None:
        self.queue.extend(behaviours)

    @property
    def log_ranges(self) -> list[tuple[int, int]]:
        return [r.log_range for r in self.received if r.methods == ["eth_getLogs"]]

    async def __aenter__(self) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        decoded = orjson.loads(await request.read())
        batch = isinstance(decoded, list)
        calls: list[JsonCall] = decoded if batch else [decoded]
        self.received.append(Received(tuple(calls), batch, time.monotonic()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            behaviour = self._behaviour(calls)
            return await behaviour(Exchange(self, request, calls, batch))
        finally:
            self.in_flight -= 1

    def _behaviour(self, calls: list[JsonCall]) -> Behaviour:
        if self.queue:
            return self.queue.popleft()
        if self.rule is not None:
            chosen = self.rule(calls[0])
            if chosen is not None:
                return chosen
        return answer()
