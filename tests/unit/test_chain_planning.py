"""Pure chain-access planning: the budget, backoff, provider messages, adaptive ranges."""

from __future__ import annotations

import pytest

from indexer.chain.budget import BudgetExhausted, WindowBudget, backoff_delay
from indexer.chain.errors import (
    FatalRpcError,
    RangeHint,
    RangeTooLarge,
    RetryableRpcError,
    classify_http_status,
    classify_rpc_error,
    parse_range_hint,
    parse_retry_after,
)
from indexer.chain.span import AdaptiveRange, after_chunk, next_chunk
from indexer.domain import Order


@pytest.mark.parametrize(
    ("limit", "costs", "spent", "refused_at"),
    [
        (12000, [10, 60, 60], 130, None),
        (120, [60, 60, 60], 120, 2),  # the third call does not fit
        (100, [60, 60], 60, 1),
        (0, [10], 0, 0),
        (60, [60], 60, None),  # exactly fits
    ],
)
def test_window_budget_pays_before_sending_and_never_overspends(
    limit: int, costs: list[int], spent: int, refused_at: int | None
) -> None:
    budget = WindowBudget(limit)
    refused = None
    for i, cost in enumerate(costs):
        try:
            budget.spend("eth_getLogs", cost)
        except BudgetExhausted:
            refused = i
            break
    assert (budget.spent_cu, refused) == (spent, refused_at)
    assert budget.spent_cu <= budget.limit_cu
    assert budget.attempts == (len(costs) if refused is None else refused)


def test_budget_counts_cu_by_method() -> None:
    budget = WindowBudget(1000)
    for method, cost in [("eth_blockNumber", 10), ("eth_getLogs", 60), ("eth_getLogs", 60)]:
        budget.spend(method, cost)
    assert budget.by_method == {"eth_blockNumber": 10, "eth_getLogs": 120}
    assert budget.remaining_cu == 870


@pytest.mark.parametrize(
    ("attempt", "jitter", "retry_after", "expected"),
    [
        (0, 0.0, None, 0.125),  # half of the 0.25 s first step
        (0, 0.999999, None, 0.25),
        (3, 0.0, None, 1.0),  # 0.25 * 2**3 = 2 s step
        (10, 0.5, None, 6.0),  # capped at 8 s: 4 + 4 * 0.5
        (0, 0.7, 2.0, 2.0),  # Retry-After wins
        (5, 0.7, 0.0, 0.0),
    ],
)
def test_backoff_schedule(
    attempt: int, jitter: float, retry_after: float | None, expected: float
) -> None:
    delay = backoff_delay(attempt, jitter=jitter, retry_after=retry_after)
    assert delay == pytest.approx(expected, rel=1e-5)


PROVIDER_MESSAGES = [
    # Infura / MetaMask
    (
        "query returned more than 10000 results. Try with this block range [0x10, 0x1F].",
        RangeHint(suggested=(16, 31)),
    ),
    # Alchemy, result size with a suggested range
    (
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
        "range and no limit on the response size, or you can request any block range with a cap "
        "of 10K logs in the response. Based on your parameters, this block range should work: "
        "[0x64, 0xc7]",
        RangeHint(suggested=(100, 199), max_span=2000),
    ),
    # Alchemy free tier
    (
        "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block range. "
        "Based on your parameters, this block range should work: [0x1, 0xa]",
        RangeHint(suggested=(1, 10), max_span=10),
    ),
    (
        "You can make eth_getLogs requests with up to a 2K block range and no limit on the "
        "response size.",
        RangeHint(max_span=2000),
    ),
    # QuickNode
    ("eth_getLogs is limited to a 10,000 range", RangeHint(max_span=10000)),
    (
        "eth_getLogs and eth_newFilter are limited to a 10000 blocks range",
        RangeHint(max_span=10000),
    ),
    # Generic
    ("block range too large", RangeHint()),
    ("block range is too wide, max is 500", RangeHint(max_span=500)),
    ("query exceeds max block range 100000", RangeHint(max_span=100000)),
    (
        "query exceeds max results 20000, retry with the range 24542000-24542999",
        RangeHint(suggested=(24542000, 24542999)),
    ),
    ("Query timeout exceeded. Consider reducing your block range.", RangeHint()),
    # Infura's current wording (-32602)
    ("range 1000000 exceeds limit of 10000", RangeHint(max_span=10000)),
]


@pytest.mark.parametrize(("message", "hint"), PROVIDER_MESSAGES)
def test_provider_range_messages_are_understood(message: str, hint: RangeHint) -> None:
    assert parse_range_hint(message) == hint
    error = classify_rpc_error(-32005, message, method="eth_getLogs")
    assert isinstance(error, RangeTooLarge)
    assert error.hint == hint


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (-32601, "the method eth_getLogz does not exist/is not available", FatalRpcError),
        (-32700, "parse error", FatalRpcError),
        (-32600, "invalid request", FatalRpcError),
        (-32602, "invalid argument 0: hex string without 0x prefix", FatalRpcError),
        (-32602, "query exceeds max block range 1000", RangeTooLarge),
        (-32000, "header not found", RetryableRpcError),
        (-32005, "daily request count exceeded, request rate limited", RetryableRpcError),
        (-32603, "internal error", RetryableRpcError),
        (-32099, "something nobody has seen before", RetryableRpcError),
        (-32614, "eth_getLogs is limited to a 10,000 range", RangeTooLarge),
    ],
)
def test_json_rpc_errors_are_classified(code: int, message: str, kind: type) -> None:
    error = classify_rpc_error(code, message, method="eth_getLogs")
    assert type(error) is kind
    assert error.code == code


def test_range_words_only_split_eth_get_logs() -> None:
    error = classify_rpc_error(-32602, "block range too large", method="eth_getBlockByNumber")
    assert type(error) is FatalRpcError


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, FatalRpcError),
        (403, FatalRpcError),
        (429, RetryableRpcError),
        (500, RetryableRpcError),
        (502, RetryableRpcError),
        (503, RetryableRpcError),
        (404, FatalRpcError),
    ],
)
def test_http_statuses_are_classified(status: int, kind: type) -> None:
    error = classify_http_status(status, method="eth_getLogs", retry_after=None)
    assert type(error) is kind
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-1", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize(
    ("events", "expected_spans"),
    [
        # halving without a hint; growth after 5 successes back to the maximum
        ([("too_large", 2000, RangeHint())], [1000]),
        ([("too_large", 2000, RangeHint()), *[("ok",)] * 5], [1000, 1000, 1000, 1000, 1000, 2000]),
        # a provider's suggested range
        ([("too_large", 2000, RangeHint(suggested=(100, 149)))], [50]),
        # a provider's hard cap: never grows above it again
        ([("too_large", 2000, RangeHint(max_span=500)), *[("ok",)] * 10], [500] * 11),
        # a suggestion larger than the failed span still shrinks
        ([("too_large", 10, RangeHint(suggested=(0, 99)))], [9]),
        ([("too_large", 2, RangeHint())], [1]),
    ],
)
def test_adaptive_range(events: list[tuple[object, ...]], expected_spans: list[int]) -> None:
    ranges = AdaptiveRange(max_span=2000)
    spans = []
    for event in events:
        if event[0] == "ok":
            ranges.record_success()
        else:
            _, requested, hint = event
            assert isinstance(requested, int) and isinstance(hint, RangeHint)
            ranges.record_too_large(requested, hint)
        spans.append(ranges.span)
    assert spans == expected_spans


def test_adaptive_range_starts_from_what_was_learned() -> None:
    assert AdaptiveRange(max_span=2000, span=300).span == 300
    assert AdaptiveRange(max_span=2000, span=5000).span == 2000  # config lowered since


@pytest.mark.parametrize(
    ("cursor", "span", "order", "chunk", "after"),
    [
        (100, 50, "asc", (100, 149), 150),
        (180, 50, "asc", (180, 200), 201),
        (200, 50, "desc", (151, 200), 150),
        (120, 50, "desc", (100, 120), 99),
        (100, 1, "asc", (100, 100), 101),
    ],
)
def test_chunks_walk_inside_the_range(
    cursor: int, span: int, order: Order, chunk: tuple[int, int], after: int
) -> None:
    assert next_chunk(cursor, span, low=100, high=200, order=order) == chunk
    assert after_chunk(chunk, order=order) == after
