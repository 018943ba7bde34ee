"""The client against a real anvil node: scans, merged filters, heads, exact matching."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.chain.budget import WindowBudget
from indexer.chain.client import RpcClient
from indexer.chain.filters import LogFilter, Matcher, merge_filters
from indexer.chain.logs import Log
from indexer.chain.scanner import LogChunk, LogScanner
from indexer.chain.span import AdaptiveRange
from indexer.settings import ChainSettings
from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.chain import LogCorpus
from tests.support.factories import parse_log


def chain_settings(url: str, **overrides: Any) -> ChainSettings:
    return ChainSettings.model_validate({"rpc_url": url, **overrides})


def parsed(raw_logs: Sequence[dict[str, Any]], low: int, high: int) -> list[Log]:
    return [parse_log(raw, from_block=low, to_block=high) for raw in raw_logs]


def as_bytes(hex_value: str) -> bytes:
    return bytes.fromhex(hex_value[2:])


async def scan_all(
    client: RpcClient, call_filters: Sequence[LogFilter], low: int, high: int, **kw: Any
) -> tuple[list[LogChunk], WindowBudget]:
    budget = WindowBudget(12000)
    ranges = AdaptiveRange(max_span=client.chain.max_block_range)
    chunks: list[LogChunk] = []
    async for chunk in LogScanner(client, ranges).scan(call_filters, low, high, budget, **kw):
        chunks.append(chunk)
    return chunks, budget


@pytest.mark.parametrize(("max_block_range", "order"), [(2000, "asc"), (4, "asc"), (3, "desc")])
async def test_scan_returns_exactly_what_anvil_holds(
    log_corpus: LogCorpus, max_block_range: int, order: str
) -> None:
    low, high = log_corpus.from_block, log_corpus.to_block
    async with RpcClient.open(chain_settings(log_corpus.url, max_block_range=max_block_range)) as c:
        chunks, budget = await scan_all(c, [LogFilter()], low, high, order=order)

    # Chunks tile the range without gap or overlap, in the requested order.
    bounds = [(chunk.from_block, chunk.to_block) for chunk in chunks]
    walk = sorted(bounds)
    assert walk[0][0] == low and walk[-1][1] == high
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(walk))
    assert bounds == (walk if order == "asc" else walk[::-1])
    assert all(chunk.to_block - chunk.from_block < max_block_range for chunk in chunks)

    logs = [entry for chunk in sorted(chunks, key=lambda c: c.from_block) for entry in chunk.logs]
    assert logs == parsed(log_corpus.logs, low, high)
    assert budget.spent_cu == 60 * len(chunks)


async def test_merged_filters_serve_several_contracts_in_one_call(log_corpus: LogCorpus) -> None:
    low, high = log_corpus.from_block, log_corpus.to_block
    first, second, third = (as_bytes(address) for address in log_corpus.contracts)
    topic0s = sorted({raw["topics"][0] for raw in log_corpus.logs if raw["topics"]})
    subscriptions = {
        "first-all": LogFilter.build([first]),
        "second-event-0": LogFilter.build([second], [[as_bytes(topic0s[0])]]),
        "second-third-event-1": LogFilter.build([second, third], [[as_bytes(topic0s[1])]]),
    }
    calls = merge_filters(subscriptions.values())
    assert calls == [LogFilter.build([first, second, third])]  # one call for all three

    async with RpcClient.open(chain_settings(log_corpus.url)) as client:
        chunks, budget = await scan_all(client, calls, low, high)
    assert budget.spent_cu == 60  # one eth_getLogs answered all three subscriptions

    matcher = Matcher(subscriptions)
    found: dict[str, list[Log]] = {key: [] for key in subscriptions}
    for chunk in chunks:
        for entry in chunk.logs:
            for key in matcher.match(entry):
                found[key].append(entry)
    for key, log_filter in subscriptions.items():
        expected = chain.get_logs(log_corpus.url, low, high, **rpc_filter_kwargs(log_filter))
        assert found[key] == parsed(expected, low, high), key
        assert found[key], f"{key} should match something in the corpus"


async def test_address_lists_are_split_across_calls(log_corpus: LogCorpus) -> None:
    low, high = log_corpus.from_block, log_corpus.to_block
    addresses = [as_bytes(address) for address in log_corpus.contracts]
    calls = merge_filters([LogFilter.build([a]) for a in addresses], max_addresses=2)
    assert len(calls) == 2
    async with RpcClient.open(chain_settings(log_corpus.url)) as client:
        chunks, budget = await scan_all(client, calls, low, high)
    logs = [entry for chunk in chunks for entry in chunk.logs]
    assert logs == parsed(log_corpus.logs, low, high)  # merged back in chain order
    assert budget.spent_cu == 120


@pytest.mark.parametrize(("confirmations", "use_finalized_tag"), [(0, False), (5, False)])
async def test_heads_from_anvil(
    anvil: AnvilNode, confirmations: int, use_finalized_tag: bool
) -> None:
    settings_ = chain_settings(anvil.url, confirmations=confirmations)
    budget = WindowBudget(100)
    async with RpcClient.open(settings_) as client:
        heads = await client.read_heads(budget)
    head = chain.block_number(anvil.url)
    assert heads.head == head
    assert heads.safe_head == (head - confirmations if head >= confirmations else None)
    assert budget.spent_cu == 10


async def test_finalized_head_from_anvil(anvil: AnvilNode) -> None:
    budget = WindowBudget(100)
    async with RpcClient.open(chain_settings(anvil.url, use_finalized_tag=True)) as client:
        heads = await client.read_heads(budget)
    finalized = chain.rpc(anvil.url, "eth_getBlockByNumber", ["finalized", False])
    assert heads.safe_head == int(finalized["number"], 16)
    assert heads.safe_head is not None and heads.safe_head <= heads.head
    assert budget.spent_cu == 30  # eth_blockNumber + eth_getBlockByNumber, one round trip


def rpc_filter_kwargs(log_filter: LogFilter) -> dict[str, Any]:
    params = log_filter.to_rpc(0, 0)
    return {"address": params.get("address"), "topics": params.get("topics")}


# --- property: in-memory matching == anvil's eth_getLogs -----------------------


def corpus_pools(corpus: LogCorpus) -> tuple[list[bytes], list[list[bytes]]]:
    addresses = [as_bytes(a) for a in corpus.contracts] + [b"\x42" * 20]  # one never seen
    per_position: list[list[bytes]] = [[] for _ in range(4)]
    for raw in corpus.logs:
        for position, topic in enumerate(raw["topics"]):
            if as_bytes(topic) not in per_position[position]:
                per_position[position].append(as_bytes(topic))
    for pool in per_position:
        pool.append(b"\x13" * 32)  # a topic no log has
    return addresses, per_position


def filters(corpus: LogCorpus) -> st.SearchStrategy[LogFilter]:
    addresses, per_position = corpus_pools(corpus)
    position = [
        st.one_of(st.none(), st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        for pool in per_position
    ]
    topic_lists = st.integers(0, 4).flatmap(lambda n: st.tuples(*position[:n]))
    return st.builds(
        LogFilter.build,
        st.lists(st.sampled_from(addresses), max_size=3, unique=True),
        topic_lists.map(list),
    )


@pytest.fixture(scope="module")
def corpus_logs(log_corpus: LogCorpus) -> list[Log]:
    return parsed(log_corpus.logs, log_corpus.from_block, log_corpus.to_block)


def test_in_memory_matching_equals_anvil_get_logs(
    log_corpus: LogCorpus, corpus_logs: list[Log]
) -> None:
    low, high = log_corpus.from_block, log_corpus.to_block

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(log_filter=filters(log_corpus))
    def check(log_filter: LogFilter) -> None:
        expected = chain.get_logs(log_corpus.url, low, high, **rpc_filter_kwargs(log_filter))
        assert [entry for entry in corpus_logs if log_filter.matches(entry)] == parsed(
            expected, low, high
        )

    check()
