"""The metered JSON-RPC client and the log scanner against a scripted fake provider.

The fake (tests/support/fake_provider.py) is a real aiohttp server on 127.0.0.1, so the
client's whole HTTP path runs: timeouts, dropped connections, truncated bodies,
status codes, Retry-After. Sleeps are recorded, never waited. Every test looks
at what an operator would notice: the logs that come out (every block exactly
once, in order), what was sent to the provider, what it cost, and how it failed.

CU per attempt (ChainSettings defaults): eth_getLogs 60, eth_blockNumber 10,
eth_getBlockByNumber 20.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chain.budget import BudgetExhausted, WindowBudget, backoff_delay
from indexer.chain.client import Heads, RpcClient
from indexer.chain.errors import (
    FatalRpcError,
    ProviderFault,
    RetryableRpcError,
    SingleBlockTooLarge,
)
from indexer.chain.filters import LogFilter
from indexer.chain.logs import Log
from indexer.chain.scanner import LogChunk, LogScanner
from indexer.chain.span import AdaptiveRange
from indexer.domain import Order
from indexer.settings import ChainSettings
from tests.support.fake_provider import (
    ADDRESS_A,
    ADDRESS_B,
    ADDRESS_C,
    Behaviour,
    FakeProvider,
    JsonCall,
    JsonLog,
    Rule,
    SyntheticChain,
    answer,
    delayed,
    drop,
    http_error,
    lagging,
    log_outside_range,
    log_range,
    null_block_hash,
    rate_limited,
    reversed_batch,
    rpc_error,
    stall,
    truncated,
    with_results,
)

GET_LOGS_CU = 60
ANY = LogFilter()


# -- harness -------------------------------------------------------------------


@dataclass
class Harness:
    fake: FakeProvider
    client: RpcClient
    sleeps: list[float]
    ranges: AdaptiveRange = field(init=False)

    def __post_init__(self) -> None:
        self.ranges = AdaptiveRange(self.client.chain.max_block_range)

    async def scan(
        self,
        low: int,
        high: int,
        budget: WindowBudget,
        *,
        into: list[LogChunk] | None = None,
        filters: Sequence[LogFilter] = (ANY,),
        order: Order = "asc",
        verify_above: int | None = None,
    ) -> list[LogChunk]:
        """Run a scan to its end; chunks land in `into` as they come (kept if it raises)."""
        chunks = [] if into is None else into
        scanner = LogScanner(self.client, self.ranges, verify_above=verify_above)
        async for chunk in scanner.scan(filters, low, high, budget, order=order):
            chunks.append(chunk)
        return chunks


@asynccontextmanager
async def provider(
    *script: Behaviour,
    rule: Rule | None = None,
    chain: SyntheticChain | None = None,
    **chain_settings: Any,
) -> AsyncIterator[Harness]:
    """A fake provider and a client pointed at it (sleeps recorded, jitter 0)."""
    async with FakeProvider(script=script, rule=rule, chain=chain or SyntheticChain()) as fake:
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        settings_ = ChainSettings.model_validate({"rpc_url": fake.url, **chain_settings})
        async with RpcClient.open(settings_, sleep=sleep, jitter=lambda: 0.0) as client:
            yield Harness(fake, client, sleeps)


def always(behaviour: Callable[[], Behaviour]) -> Rule:
    return lambda call: behaviour()


def as_raw(entry: Log) -> JsonLog:
    """A parsed log back in eth_getLogs form, to compare with what the chain holds."""
    return {
        "address": entry.address,
        "topics": list(entry.topics),
        "data": entry.data,
        "blockNumber": hex(entry.block_number),
        "blockHash": entry.block_hash,
        "transactionHash": entry.transaction_hash,
        "transactionIndex": hex(entry.transaction_index),
        "logIndex": hex(entry.log_index),
        "removed": False,
    }


def bounds(chunks: Sequence[LogChunk]) -> list[tuple[int, int]]:
    return [(chunk.from_block, chunk.to_block) for chunk in chunks]


def assert_complete(
    chunks: Sequence[LogChunk],
    chain: SyntheticChain,
    low: int,
    high: int,
    *,
    order: str = "asc",
    addresses: Sequence[str] | None = None,
) -> None:
    """Every block of [low, high] exactly once, in order, each chunk with all its logs."""
    spans = bounds(chunks)
    walk = spans if order == "asc" else spans[::-1]
    assert walk, "no chunk at all"
    assert walk[0][0] == low and walk[-1][1] == high, spans
    for (_, previous_end), (start, _) in itertools.pairwise(walk):
        assert start == previous_end + 1, f"gap or overlap: {spans}"
    for start, end in walk:
        assert start <= end, spans
    for chunk in chunks:
        assert [as_raw(e) for e in chunk.logs] == chain.logs(
            chunk.from_block, chunk.to_block, addresses
        ), (chunk.from_block, chunk.to_block)


def assert_every_request_paid(h: Harness, budget: WindowBudget) -> None:
    cost = sum(h.client.chain.cu_cost(m) for r in h.fake.received for m in r.methods)
    assert budget.spent_cu == cost
    assert budget.spent_cu <= budget.limit_cu


def sparse(every: int) -> Callable[[int], int]:
    return lambda block: 1 if block % every == 7 else 0


# -- 1. range splitting with each provider's real message -----------------------


@dataclass(frozen=True)
class Refusal:
    code: int
    message: str
    expected_next: tuple[int, int]  # what a scanner that follows the hint asks next
    status: int = 200


Limit = Callable[[SyntheticChain, int, int], Refusal | None]


def fitting(chain: SyntheticChain, start: int, max_logs: int) -> int:
    """The last block of the longest range from `start` holding at most `max_logs` logs."""
    total, block = 0, start
    while total + chain.logs_per_block(block) <= max_logs:
        total += chain.logs_per_block(block)
        block += 1
    return block - 1


def infura(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    if chain.count(start, end) <= 50:
        return None
    last = fitting(chain, start, 50)
    return Refusal(
        -32005,
        f"query returned more than 50 results. Try with this block range [{start:#x}, {last:#x}].",
        (start, last),
    )


def alchemy(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    if chain.count(start, end) <= 40:
        return None
    last = fitting(chain, start, 40)
    return Refusal(
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block"
        " range and no limit on the response size, or you can request any block range with a"
        " cap of 10K logs in the response. Based on your parameters, this block range should"
        f" work: [{start:#x}, {last:#x}]",
        (start, last),
    )


def alchemy_free_tier(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    if end - start + 1 <= 10:
        return None
    return Refusal(
        -32600,
        "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block"
        " range. Upgrade to PAYG for expanded block range.",
        (start, start + 9),
        status=400,
    )


def alchemy_free_tier_with_suggestion(
    chain: SyntheticChain, start: int, end: int
) -> Refusal | None:
    # Today's wording (see alchemy users' reports, e.g. risc0/risc0-ethereum#656).
    if end - start + 1 <= 10:
        return None
    return Refusal(
        -32600,
        "You can make eth_getLogs requests with up to a 10 block range. Based on your"
        f" parameters, this block range should work: [{start:#x}, {start + 9:#x}]",
        (start, start + 9),
    )


def quicknode(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    if end - start + 1 <= 10_000:
        return None
    # QuickNode sends it with HTTP 413 (eternalsafe/wallet#57).
    return Refusal(
        -32614, "eth_getLogs is limited to a 10,000 range", (start, start + 9_999), status=413
    )


def too_large(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    span = end - start + 1
    if span <= 300:
        return None
    return Refusal(-32000, "block range too large", (start, start + span // 2 - 1))


def too_wide(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    if end - start + 1 <= 500:
        return None
    return Refusal(-32000, "block range is too wide, max is 500", (start, start + 499), status=400)


def max_results(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    if chain.count(start, end) <= 60:
        return None
    last = fitting(chain, start, 60)
    return Refusal(
        -32000,
        f"query exceeds max results 60, retry with the range {start}-{last}",
        (start, last),
    )


def invalid_params_range(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
    # -32602 is "invalid params", but this one is about the range: a split, not fatal.
    if end - start + 1 <= 1000:
        return None
    return Refusal(-32602, "query exceeds max block range 1000", (start, start + 999))


@dataclass(frozen=True)
class RangeCase:
    limit: Limit
    low: int
    high: int
    max_block_range: int
    density: Callable[[int], int] = lambda block: block % 3


RANGE_CASES = {
    "infura-32005-suggested-range": RangeCase(infura, 0, 599, 200),
    "alchemy-response-size-suggested-range": RangeCase(alchemy, 0, 599, 200),
    "alchemy-free-tier-10-blocks": RangeCase(alchemy_free_tier, 0, 99, 50),
    "alchemy-free-tier-suggested-range": RangeCase(alchemy_free_tier_with_suggestion, 0, 99, 50),
    "quicknode-32614-10000-range": RangeCase(quicknode, 0, 24_999, 20_000, sparse(1000)),
    "generic-too-large-halves": RangeCase(too_large, 0, 1_999, 2_000, sparse(13)),
    "too-wide-max-is-500": RangeCase(too_wide, 0, 1_999, 2_000, sparse(13)),
    "max-results-retry-with-range": RangeCase(max_results, 0, 599, 200),
    "invalid-params-32602-about-the-range": RangeCase(
        invalid_params_range, 0, 2_999, 2_000, sparse(29)
    ),
}


@dataclass
class Refusing:
    """A rule that refuses eth_getLogs calls past a provider's limit, remembering what it said."""

    chain: SyntheticChain
    limit: Limit
    refused: dict[tuple[int, int], Refusal] = field(default_factory=dict)

    def __call__(self, call: JsonCall) -> Behaviour | None:
        if call["method"] != "eth_getLogs":
            return None
        start, end = log_range(call)
        refusal = self.limit(self.chain, start, end)
        if refusal is None:
            return None
        self.refused[start, end] = refusal
        return rpc_error(refusal.code, refusal.message, status=refusal.status)


@pytest.mark.parametrize("in_flight", [1, 4])
@pytest.mark.parametrize("case_id", list(RANGE_CASES))
async def test_range_errors_split_by_the_providers_hint(case_id: str, in_flight: int) -> None:
    case = RANGE_CASES[case_id]
    chain = SyntheticChain(logs_per_block=case.density)
    refusing = Refusing(chain, case.limit)
    budget = WindowBudget(12_000)
    async with provider(
        rule=refusing,
        chain=chain,
        max_block_range=case.max_block_range,
        max_calls_in_flight=in_flight,
    ) as h:
        chunks = await h.scan(case.low, case.high, budget)

    assert refusing.refused, "the provider's limit was never hit"
    assert_complete(chunks, chain, case.low, case.high)
    assert budget.spent_cu == GET_LOGS_CU * len(h.fake.received) <= budget.limit_cu
    assert h.sleeps == []  # a split is not a retry: no backoff
    if in_flight == 1:
        # One call at a time: the call right after each refusal is the one the hint asks for.
        sent = h.fake.log_ranges
        for i, requested in enumerate(sent):
            if requested in refusing.refused:
                assert sent[i + 1] == refusing.refused[requested].expected_next, (
                    f"after {requested} was refused: {sent}"
                )


async def test_alchemy_free_tier_cap_is_kept_after_the_first_refusal() -> None:
    # Fix: Alchemy's free-tier refusal names a hard cap ("up to a 10 block range") *and*
    # suggests a range. parse_range_hint returns only the suggestion (suggested wins over
    # max_span), so AdaptiveRange.provider_cap is never set and the span doubles back to 20
    # after `grow_after` successes: the provider refuses again, every 6th call, each paid.
    chain = SyntheticChain()
    refusing = Refusing(chain, alchemy_free_tier_with_suggestion)
    budget = WindowBudget(12_000)
    async with provider(rule=refusing, chain=chain, max_block_range=50, max_calls_in_flight=1) as h:
        chunks = await h.scan(0, 199, budget)
    assert_complete(chunks, chain, 0, 199)
    first_refused = h.fake.log_ranges.index(next(iter(refusing.refused)))
    after = h.fake.log_ranges[first_refused + 1 :]
    assert max(end - start + 1 for start, end in after) <= 10, after
    assert len(refusing.refused) == 1


async def test_infura_block_range_limit_message_is_a_split_not_fatal() -> None:
    # Fix: Infura's live range limit (INFURA/infura#237) answers
    # -32602 "range 1000000 exceeds limit of 10000". No _RANGE_PROBLEM pattern matches it
    # ("range N exceeds limit of M"), so classify_rpc_error makes it a FatalRpcError
    # (invalid params) and any scan with max_block_range > 10000 on Infura fails outright.
    def limit(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
        span = end - start + 1
        if span <= 10_000:
            return None
        return Refusal(-32602, f"range {span} exceeds limit of 10000", (start, start + 9_999))

    chain = SyntheticChain(logs_per_block=sparse(1000))
    refusing = Refusing(chain, limit)
    budget = WindowBudget(12_000)
    async with provider(
        rule=refusing, chain=chain, max_block_range=20_000, max_calls_in_flight=1
    ) as h:
        chunks = await h.scan(0, 24_999, budget)
    assert_complete(chunks, chain, 0, 24_999)
    assert budget.spent_cu == GET_LOGS_CU * len(h.fake.received)


# -- 2. a single block that is still too large ----------------------------------------


async def test_a_single_block_too_large_fails_naming_the_block_without_looping() -> None:
    def limit(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
        if not start <= 101 <= end:
            return None
        message = "Log response size exceeded. Please reduce query block range."
        return Refusal(-32602, message, (start, end))

    chain = SyntheticChain()
    refusing = Refusing(chain, limit)
    budget = WindowBudget(12_000)
    chunks: list[LogChunk] = []
    async with provider(rule=refusing, chain=chain, max_block_range=16, max_calls_in_flight=1) as h:
        with pytest.raises(SingleBlockTooLarge, match=r"block 101\b") as failed:
            await h.scan(96, 111, budget, into=chunks)

    # Halving down to the one block, which is asked for once and then given up on.
    assert h.fake.log_ranges == [
        (96, 111),
        (96, 103),
        (96, 99),
        (100, 103),
        (100, 101),
        (100, 100),
        (101, 101),
    ]
    assert bounds(chunks) == [(96, 99), (100, 100)]  # what came before it is delivered
    assert not failed.value.retryable
    assert h.sleeps == []
    assert budget.spent_cu == GET_LOGS_CU * 7


async def test_a_single_block_range_refused_up_front_is_asked_once() -> None:
    budget = WindowBudget(12_000)
    refusal = rpc_error(-32005, "query returned more than 10000 results")
    async with provider(rule=always(lambda: refusal)) as h:
        with pytest.raises(SingleBlockTooLarge, match=r"block 500\b"):
            await h.scan(500, 500, budget)
    assert h.fake.log_ranges == [(500, 500)]
    assert budget.spent_cu == GET_LOGS_CU


# -- 3. transient failures are retried, each attempt paid ------------------------------

RETRIED = {
    "429-retry-after-2": ([rate_limited("2")], [2.0]),
    "503-twice": (
        [http_error(503), http_error(503)],
        [backoff_delay(0, jitter=0.0), backoff_delay(1, jitter=0.0)],
    ),
    "stalled-past-timeout": ([stall()], [backoff_delay(0, jitter=0.0)]),
    "dropped-connection": ([drop()], [backoff_delay(0, jitter=0.0)]),
    "truncated-json": ([truncated()], [backoff_delay(0, jitter=0.0)]),
    "header-not-found": ([rpc_error(-32000, "header not found")], [backoff_delay(0, jitter=0.0)]),
    "infura-rate-limit-32005": (
        [rpc_error(-32005, "daily request count exceeded, request rate limited")],
        [backoff_delay(0, jitter=0.0)],
    ),
    "502-html-page": (
        [http_error(502, body=b"<html>Bad Gateway</html>")],
        [backoff_delay(0, jitter=0.0)],
    ),
}


@pytest.mark.parametrize("case_id", list(RETRIED))
async def test_transient_failures_are_retried_and_every_attempt_is_paid(case_id: str) -> None:
    script, expected_sleeps = RETRIED[case_id]
    budget = WindowBudget(12_000)
    started = time.monotonic()
    async with provider(*script, request_timeout_seconds=0.3) as h:
        logs = await h.client.get_logs(ANY, 100, 120, budget)
    elapsed = time.monotonic() - started

    assert [as_raw(e) for e in logs] == h.fake.chain.logs(100, 120)
    attempts = len(script) + 1
    assert h.fake.log_ranges == [(100, 120)] * attempts  # the same call, again
    assert budget.spent_cu == GET_LOGS_CU * attempts
    assert budget.attempts == attempts
    assert h.sleeps == expected_sleeps
    assert elapsed < 3.0  # a stalled answer is given up on at the timeout, not waited for
    if case_id == "stalled-past-timeout":
        assert elapsed >= 0.3


async def test_exponential_backoff_doubles_between_attempts() -> None:
    budget = WindowBudget(12_000)
    async with provider(*[http_error(503)] * 4, max_attempts=5) as h:
        await h.client.get_logs(ANY, 1, 2, budget)
    assert h.sleeps == [0.125, 0.25, 0.5, 1.0]
    assert budget.spent_cu == GET_LOGS_CU * 5


# -- 4. retries exhausted ------------------------------------------------------------


async def test_retries_end_after_max_attempts() -> None:
    budget = WindowBudget(12_000)
    async with provider(rule=always(lambda: http_error(503)), max_attempts=3) as h:
        with pytest.raises(RetryableRpcError, match="HTTP 503") as failed:
            await h.client.get_logs(ANY, 1, 2, budget)
    assert failed.value.status == 503
    assert len(h.fake.received) == 3
    assert budget.spent_cu == 180
    assert h.sleeps == [0.125, 0.25]  # no sleep after the last attempt


async def test_a_retry_after_beyond_the_limit_is_left_for_a_later_window() -> None:
    budget = WindowBudget(12_000)
    async with provider(rate_limited("120"), max_retry_after_seconds=30) as h:
        with pytest.raises(RetryableRpcError, match="later window") as failed:
            await h.client.get_logs(ANY, 1, 2, budget)
    assert failed.value.retry_after == 120.0
    assert len(h.fake.received) == 1
    assert h.sleeps == []
    assert budget.spent_cu == GET_LOGS_CU


# -- 5. not retried ----------------------------------------------------------------------

FATAL = {
    "http-401": (http_error(401, body=b"invalid project id"), "HTTP 401"),
    "http-403": (http_error(403, body=b"forbidden"), "HTTP 403"),
    "method-not-found-32601": (
        rpc_error(-32601, "the method eth_getLogs does not exist/is not available"),
        "method not found",
    ),
    "parse-error-32700": (rpc_error(-32700, "parse error"), "parse error"),
    "invalid-request-32600": (rpc_error(-32600, "invalid request"), "invalid request"),
    "invalid-request-32600-http-400": (
        rpc_error(-32600, "invalid request", status=400),
        "invalid request",
    ),
    "invalid-params-32602": (
        rpc_error(-32602, "invalid argument 0: hex string without 0x prefix"),
        "invalid params (-32602): invalid argument 0: hex string without 0x prefix",
    ),
    "invalid-params-32602-http-400": (
        rpc_error(-32602, "invalid argument 0: hex string without 0x prefix", status=400),
        "hex string without 0x prefix",
    ),
    "http-404": (http_error(404, body=b"not found"), "unexpected HTTP 404"),
}


@pytest.mark.parametrize("case_id", list(FATAL))
async def test_fatal_errors_are_not_retried(case_id: str) -> None:
    behaviour, says = FATAL[case_id]
    budget = WindowBudget(12_000)
    chunks: list[LogChunk] = []
    async with provider(rule=always(lambda: behaviour)) as h:
        with pytest.raises(FatalRpcError) as failed:
            await h.scan(0, 99, budget, into=chunks)
    assert says in str(failed.value)
    assert "eth_getLogs" in str(failed.value)
    assert not failed.value.retryable
    assert chunks == []
    # max_calls_in_flight=4 and 100 blocks in one chunk: a single call, never repeated.
    assert len(h.fake.received) == 1
    assert budget.spent_cu == GET_LOGS_CU
    assert h.sleeps == []


async def test_http_401_message_points_at_the_key() -> None:
    budget = WindowBudget(12_000)
    async with provider(http_error(401)) as h:
        with pytest.raises(FatalRpcError, match="check the RPC URL's key") as failed:
            await h.client.get_logs(ANY, 1, 2, budget)
    assert failed.value.status == 401


@pytest.mark.parametrize(
    ("code", "message"), [(-32700, "parse error"), (-32600, "invalid request")]
)
async def test_errors_with_a_null_id_are_still_fatal(code: int, message: str) -> None:
    # Fix: JSON-RPC 2.0 says the id of a -32700 / -32600 answer MUST be null when the server
    # could not read it (geth does so). rpc._results looks answers up by id only, finds none,
    # and raises RetryableRpcError("no answer for this call in the response"): the fatal error
    # is retried max_attempts times, paid each time, and its message is lost.
    budget = WindowBudget(12_000)
    async with provider(rule=always(lambda: rpc_error(code, message, null_id=True))) as h:
        with pytest.raises(FatalRpcError, match=message):
            await h.client.get_logs(ANY, 1, 2, budget)
    assert len(h.fake.received) == 1
    assert budget.spent_cu == GET_LOGS_CU


# -- 6. budget -----------------------------------------------------------------------


async def test_the_scan_stops_where_the_budget_ends() -> None:
    budget = WindowBudget(180)  # 3 eth_getLogs calls; the range needs 10
    chunks: list[LogChunk] = []
    async with provider(max_block_range=10) as h:
        with pytest.raises(BudgetExhausted, match=r"block 30\b"):
            await h.scan(0, 99, budget, into=chunks)
    assert bounds(chunks) == [(0, 9), (10, 19), (20, 29)]
    assert_complete(chunks, h.fake.chain, 0, 29)
    assert len(h.fake.received) == 3
    assert budget.spent_cu == 180 == budget.limit_cu


async def test_a_retry_that_does_not_fit_is_never_sent() -> None:
    budget = WindowBudget(100)
    chunks: list[LogChunk] = []
    async with provider(http_error(503)) as h:
        with pytest.raises(BudgetExhausted):
            await h.scan(0, 9, budget, into=chunks)
    assert chunks == []
    assert len(h.fake.received) == 1
    assert budget.spent_cu == GET_LOGS_CU


async def test_a_retry_that_cannot_be_paid_does_not_wait_first() -> None:
    # Fix: _with_retries sleeps the backoff (here the provider's Retry-After, up to
    # max_retry_after_seconds) *before* _pay finds that the retry does not fit. The window
    # blocks for nothing and then raises BudgetExhausted anyway.
    budget = WindowBudget(100)
    async with provider(rate_limited("20")) as h:
        with pytest.raises(BudgetExhausted):
            await h.client.get_logs(ANY, 0, 9, budget)
    assert len(h.fake.received) == 1
    assert h.sleeps == []


async def test_a_budget_too_small_for_one_call_sends_nothing() -> None:
    budget = WindowBudget(59)
    async with provider() as h:
        with pytest.raises(BudgetExhausted, match=r"block 0\b"):
            await h.scan(0, 99, budget)
    assert h.fake.received == []
    assert budget.spent_cu == 0


PROPERTY_BEHAVIOURS: dict[str, Callable[[], Behaviour]] = {
    "ok": answer,
    "503": lambda: http_error(503),
    "429": lambda: rate_limited("1"),
    "too-large": lambda: rpc_error(-32000, "block range too large"),
    "header-not-found": lambda: rpc_error(-32000, "header not found"),
    "truncated": truncated,
}


async def _scan_with_script(
    script: list[str], limit: int, max_attempts: int, in_flight: int
) -> tuple[WindowBudget, Harness, list[LogChunk], BaseException | None]:
    budget = WindowBudget(limit)
    chunks: list[LogChunk] = []
    raised: BaseException | None = None
    behaviours = [PROPERTY_BEHAVIOURS[name]() for name in script]
    async with provider(
        *behaviours,
        max_block_range=20,
        max_attempts=max_attempts,
        max_calls_in_flight=in_flight,
    ) as h:
        try:
            await h.scan(0, 59, budget, into=chunks)
        except (BudgetExhausted, RetryableRpcError, SingleBlockTooLarge) as exc:
            raised = exc
    return budget, h, chunks, raised


@settings(max_examples=50, deadline=None)
@given(
    script=st.lists(st.sampled_from(sorted(PROPERTY_BEHAVIOURS)), max_size=12),
    limit=st.integers(min_value=0, max_value=1_500),
    max_attempts=st.integers(min_value=1, max_value=4),
    in_flight=st.integers(min_value=1, max_value=4),
)
def test_every_paid_call_is_sent_and_the_budget_is_never_exceeded(
    script: list[str], limit: int, max_attempts: int, in_flight: int
) -> None:
    budget, h, chunks, raised = asyncio.run(
        _scan_with_script(script, limit, max_attempts, in_flight)
    )
    assert budget.spent_cu <= budget.limit_cu
    # Nothing is ever sent unpaid.
    assert budget.spent_cu >= GET_LOGS_CU * len(h.fake.received)
    if in_flight == 1:
        # One call at a time: nothing is paid that was not sent either. (With several in
        # flight, a call paid just before the scan fails may be cancelled before it is sent.)
        assert budget.spent_cu == GET_LOGS_CU * len(h.fake.received)
        assert budget.attempts == len(h.fake.received)
    if chunks:  # what came out is a complete prefix of the range
        assert_complete(chunks, h.fake.chain, 0, chunks[-1].to_block)
    if raised is None:
        assert_complete(chunks, h.fake.chain, 0, 59)
    if isinstance(raised, BudgetExhausted):
        assert budget.remaining_cu < GET_LOGS_CU


# -- 7. provider faults ----------------------------------------------------------------

FAULTS = {"log-outside-range": log_outside_range, "null-block-hash": null_block_hash}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_provider_fault_is_retried_and_never_returned(fault: str) -> None:
    budget = WindowBudget(12_000)
    async with provider(FAULTS[fault]()) as h:
        chunks = await h.scan(100, 119, budget)
    assert_complete(chunks, h.fake.chain, 100, 119)  # only the chain's own logs
    assert h.fake.log_ranges == [(100, 119), (100, 119)]
    assert h.sleeps == [backoff_delay(0, jitter=0.0)]
    assert budget.spent_cu == 2 * GET_LOGS_CU


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_persistent_provider_fault_propagates_after_max_attempts(fault: str) -> None:
    budget = WindowBudget(12_000)
    chunks: list[LogChunk] = []
    make = FAULTS[fault]
    async with provider(rule=always(make), max_attempts=3) as h:
        with pytest.raises(ProviderFault) as failed:
            await h.scan(100, 119, budget, into=chunks)
    assert failed.value.retryable
    assert chunks == []
    assert len(h.fake.received) == 3
    assert budget.spent_cu == 3 * GET_LOGS_CU
    if fault == "log-outside-range":
        assert "block 120" in str(failed.value)


# -- 8. heads --------------------------------------------------------------------------


async def test_heads_from_confirmations_cost_one_block_number_call() -> None:
    budget = WindowBudget(12_000)
    async with provider(confirmations=12) as h:
        heads = await h.client.read_heads(budget)
    assert heads == Heads(head=1_000_000, safe_head=999_988)
    [request] = h.fake.received
    assert (request.batch, request.methods) == (False, ["eth_blockNumber"])
    assert budget.spent_cu == 10


async def test_no_safe_head_while_the_chain_is_shorter_than_the_confirmations() -> None:
    budget = WindowBudget(12_000)
    async with provider(chain=SyntheticChain(head=5), confirmations=12) as h:
        assert await h.client.read_heads(budget) == Heads(head=5, safe_head=None)


async def test_heads_from_the_finalized_tag_come_in_one_batched_request() -> None:
    budget = WindowBudget(12_000)
    async with provider(use_finalized_tag=True) as h:
        heads = await h.client.read_heads(budget)
    assert heads == Heads(head=1_000_000, safe_head=999_936)
    [request] = h.fake.received
    assert request.batch
    assert request.methods == ["eth_blockNumber", "eth_getBlockByNumber"]
    assert request.calls[1]["params"] == ["finalized", False]
    assert budget.spent_cu == 30
    assert budget.by_method == {"eth_blockNumber": 10, "eth_getBlockByNumber": 20}


async def test_batch_answers_in_another_order_are_matched_by_id() -> None:
    budget = WindowBudget(12_000)
    async with provider(reversed_batch(), use_finalized_tag=True) as h:
        assert await h.client.read_heads(budget) == Heads(1_000_000, 999_936)


async def test_no_safe_head_before_any_block_is_finalized() -> None:
    budget = WindowBudget(12_000)
    async with provider(chain=SyntheticChain(finalized=None), use_finalized_tag=True) as h:
        assert await h.client.read_heads(budget) == Heads(head=1_000_000, safe_head=None)


async def test_a_null_block_number_is_a_provider_fault() -> None:
    # Fix: read_heads does int(result, 16) on whatever came back. A provider answering
    # {"result": null} makes it raise a bare TypeError: not an RpcError, not retried,
    # not classified (the same for a finalized block without "number": KeyError).
    budget = WindowBudget(12_000)
    async with provider(rule=always(lambda: with_results(lambda call: None))) as h:
        with pytest.raises(ProviderFault):
            await h.client.read_heads(budget)


# -- 9. concurrency --------------------------------------------------------------------


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_calls_run_concurrently_and_chunks_come_out_in_order(order: Order) -> None:
    budget = WindowBudget(12_000)
    async with provider(
        rule=always(lambda: delayed(0.05)), max_block_range=10, max_calls_in_flight=4
    ) as h:
        chunks = await h.scan(0, 99, budget, order=order)
    assert h.fake.max_in_flight == 4
    expected = [(start, start + 9) for start in range(0, 100, 10)]
    assert bounds(chunks) == (expected if order == "asc" else expected[::-1])
    assert_complete(chunks, h.fake.chain, 0, 99, order=order)
    assert budget.spent_cu == 10 * GET_LOGS_CU


async def test_descending_scan_splits_keep_descending_order() -> None:
    def limit(chain: SyntheticChain, start: int, end: int) -> Refusal | None:
        if end - start + 1 <= 5:
            return None
        return Refusal(-32000, "block range is too wide, max is 5", (end - 4, end))

    chain = SyntheticChain()
    refusing = Refusing(chain, limit)
    budget = WindowBudget(12_000)
    async with provider(rule=refusing, chain=chain, max_block_range=10, max_calls_in_flight=4) as h:
        chunks = await h.scan(0, 49, budget, order="desc")
    assert bounds(chunks) == [(start, start + 4) for start in range(45, -1, -5)]
    assert_complete(chunks, chain, 0, 49, order="desc")
    assert budget.spent_cu == GET_LOGS_CU * len(h.fake.received)


# -- 10. merged call filters -----------------------------------------------------------


def address_filter(address: str) -> LogFilter:
    return LogFilter.build([address])


@pytest.mark.parametrize("in_flight", [1, 4])
async def test_two_call_filters_cost_two_calls_per_chunk_and_merge_in_order(
    in_flight: int,
) -> None:
    chain = SyntheticChain(
        logs_per_block=lambda b: b % 4, addresses=(ADDRESS_A, ADDRESS_B, ADDRESS_C)
    )
    budget = WindowBudget(12_000)
    filters = [address_filter(ADDRESS_A), address_filter(ADDRESS_B)]
    async with provider(chain=chain, max_block_range=10, max_calls_in_flight=in_flight) as h:
        chunks = await h.scan(0, 29, budget, filters=filters)

    assert bounds(chunks) == [(0, 9), (10, 19), (20, 29)]
    assert_complete(chunks, chain, 0, 29, addresses=[ADDRESS_A, ADDRESS_B])
    for chunk in chunks:
        keys = [(e.block_number, e.log_index) for e in chunk.logs]
        assert keys == sorted(keys)
        assert {e.address for e in chunk.logs} == {ADDRESS_A.lower(), ADDRESS_B.lower()}
    per_chunk = sorted((r.log_range, tuple(r.params[0]["address"])) for r in h.fake.received)
    assert per_chunk == sorted(
        ((start, start + 9), (address,))
        for start in (0, 10, 20)
        for address in (ADDRESS_A, ADDRESS_B)
    )
    assert budget.spent_cu == 3 * 2 * GET_LOGS_CU


async def test_a_refused_call_filter_refetches_the_whole_chunk_smaller() -> None:
    chain = SyntheticChain(addresses=(ADDRESS_A, ADDRESS_B))

    def refuse_b(call: JsonCall) -> Behaviour | None:
        start, end = log_range(call)
        if call["params"][0]["address"] == [ADDRESS_B] and end - start + 1 > 5:
            # Delayed so that A's answer for the same chunk is in (and then thrown away).
            return delayed(0.05, rpc_error(-32000, "block range too large"))
        return None

    budget = WindowBudget(12_000)
    filters = [address_filter(ADDRESS_A), address_filter(ADDRESS_B)]
    async with provider(rule=refuse_b, chain=chain, max_block_range=10, max_calls_in_flight=1) as h:
        chunks = await h.scan(0, 9, budget, filters=filters)
    assert bounds(chunks) == [(0, 4), (5, 9)]
    assert_complete(chunks, chain, 0, 9, addresses=[ADDRESS_A, ADDRESS_B])
    assert len(h.fake.received) == 6  # (0-9) twice, then (0-4) and (5-9) twice each
    assert budget.spent_cu == 6 * GET_LOGS_CU


# -- nodes behind the head ----------------------------------------------------


def lagging_every(nth: int, behind: int) -> Rule:
    """Every `nth` HTTP request reaches a node `behind` blocks behind the head."""
    turn = itertools.count(1)
    return lambda call: lagging(behind) if next(turn) % nth == 0 else None


async def test_a_node_behind_the_head_is_believed_without_verification() -> None:
    """The failure verification exists for: `[]` from a node that has not seen the
    blocks reads as "no logs"."""
    chain = SyntheticChain(head=10_000)
    async with provider(rule=lagging_every(2, 300), chain=chain, max_block_range=100) as h:
        chunks = await h.scan(9_001, 10_000, WindowBudget(100_000))
    stored = sum(len(c.logs) for c in chunks)
    assert stored < chain.count(9_001, 10_000)


async def test_calls_near_the_head_read_their_last_block_and_ask_again_if_unseen() -> None:
    chain = SyntheticChain(head=10_000)
    budget = WindowBudget(100_000)
    async with provider(rule=lagging_every(2, 300), chain=chain, max_block_range=100) as h:
        chunks = await h.scan(9_001, 10_000, budget, verify_above=9_500)
    assert_complete(chunks, chain, 9_001, 10_000)
    assert_every_request_paid(h, budget)
    verified = [r for r in h.fake.received if r.batch]
    plain = [r for r in h.fake.received if not r.batch]
    # Below the line, one plain eth_getLogs per 100 blocks, believed (the lagging node
    # has those blocks); above it every call comes with its last block's header.
    assert {r.log_range[1] for r in plain} == {9_100, 9_200, 9_300, 9_400, 9_500}
    assert all(r.methods == ["eth_getLogs", "eth_getBlockByNumber"] for r in verified)
    assert all(log_range(r.calls[0])[1] > 9_500 for r in verified)
    ends = [log_range(r.calls[0])[1] for r in verified]
    assert len(ends) > len(set(ends)), "some call must have been asked again"
    assert h.sleeps, "asked again after a backoff, as any transient trouble"


async def test_a_node_that_never_catches_up_leaves_the_blocks_for_a_later_window() -> None:
    chain = SyntheticChain(head=10_000)
    async with provider(rule=always(lambda: lagging(300)), chain=chain, max_attempts=3) as h:
        into: list[LogChunk] = []
        with pytest.raises(RetryableRpcError, match="has not seen that block"):
            await h.scan(9_801, 10_000, WindowBudget(100_000), into=into, verify_above=9_000)
    assert into == []  # nothing believed, nothing handed on
    assert len(h.fake.received) == 3
