"""Logs in flight are bounded: the scanner sends another eth_getLogs call only while
the calls in flight are expected (from the logs per block seen so far) to bring fewer
logs than the chain allows, so a dense chain with big calls keeps one call in flight
and a sparse one keeps them all busy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from indexer.chain.budget import WindowBudget
from indexer.chain.filters import LogFilter
from indexer.chain.logs import Log
from indexer.chain.scanner import LogScanner
from indexer.chain.span import AdaptiveRange
from indexer.settings import ChainSettings


@dataclass
class DenseChain:
    """Answers `per_block` logs for every block, after a short pause; counts overlap."""

    chain: ChainSettings
    per_block: int
    in_flight: int = 0
    most_in_flight: int = 0
    calls: list[tuple[int, int]] = field(default_factory=list)

    async def get_logs(
        self, _: LogFilter, low: int, high: int, budget: WindowBudget, *, verify: bool = False
    ) -> list[Log]:
        budget.spend("eth_getLogs", self.chain.cu_cost("eth_getLogs"))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.calls.append((low, high))
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return [
            Log(block, "0x" + "ab" * 32, i, "0x" + "cd" * 32, 0, "0x" + "11" * 20, (), "0x")
            for block in range(low, high + 1)
            for i in range(self.per_block)
        ]


async def scan(per_block: int, *, span: int, max_logs: int) -> DenseChain:
    settings = ChainSettings.model_validate(
        {
            "rpc_url": "http://127.0.0.1:9",
            "max_block_range": span,
            "max_calls_in_flight": 4,
            "max_logs_in_flight": max_logs,
        }
    )
    chain = DenseChain(settings, per_block)
    scanner = LogScanner(chain, AdaptiveRange(max_span=span))  # type: ignore[arg-type]
    budget = WindowBudget(1_000_000)
    blocks = 0
    async for chunk in scanner.scan([LogFilter()], 0, 20 * span - 1, budget):
        blocks += chunk.to_block - chunk.from_block + 1
    assert blocks == 20 * span  # every block scanned, whatever the bound
    return chain


@pytest.mark.parametrize(
    ("per_block", "span", "max_logs", "most"),
    [
        (10, 100, 1_000, 1),  # each call brings the whole bound: one at a time
        (10, 100, 2_500, 2),  # room for two calls' logs
        (1, 100, 1_000_000, 4),  # sparse: every call the chain allows
        (0, 100, 1, 4),  # empty blocks cost no memory
    ],
)
async def test_calls_in_flight_follow_the_logs_they_are_expected_to_bring(
    per_block: int, span: int, max_logs: int, most: int
) -> None:
    chain = await scan(per_block, span=span, max_logs=max_logs)
    assert chain.most_in_flight == most


async def test_on_a_dense_chain_calls_ask_for_fewer_blocks_once_its_density_is_known() -> None:
    chain = await scan(10, span=1_000, max_logs=1_000)  # 10 logs a block: 100 blocks a call
    first, *rest = chain.calls
    assert first == (0, 999)  # before any answer, the configured span
    assert rest and all(high - low + 1 <= 100 for low, high in rest)
    assert chain.most_in_flight == 1
