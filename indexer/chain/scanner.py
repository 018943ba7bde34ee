"""Walking a block range with eth_getLogs: adaptive spans, several calls in flight,
chunks handed on complete and in scan order.

A chunk is yielded only when every call for its blocks answered, so whoever
commits it never sees part of a block range. A range/result-size error splits
the chunk (`chain.span`); every attempt is paid from the window's budget.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import structlog

from indexer.chain.budget import BudgetExhausted, WindowBudget
from indexer.chain.client import BlockRef, RpcClient
from indexer.chain.errors import NodeBehind, RangeTooLarge, SingleBlockTooLarge
from indexer.chain.filters import LogFilter
from indexer.chain.logs import Log
from indexer.chain.span import AdaptiveRange, after_chunk, next_chunk
from indexer.domain import ORDERS, Order

log = structlog.get_logger(__name__)

Answered = tuple[list[Log], BlockRef | None]  # a chunk's logs, and its last block if verified


@dataclass(frozen=True)
class LogChunk:
    """The logs of [from_block, to_block], complete: every call for it answered."""

    from_block: int
    to_block: int
    logs: list[Log]
    cached: bool = False  # read from the chain's log cache: the logs are stored already
    header: BlockRef | None = None  # the call's last block, when the call was verified

    def split(self, max_logs: int, order: Order = "asc") -> list[LogChunk]:
        """The chunk as consecutive whole-block chunks of at most `max_logs` logs each
        (a block with more stays whole), in scan order: committed one after another,
        they keep what a commit holds in memory bounded whatever the call's size."""
        if len(self.logs) <= max_logs:
            return [self]
        parts: list[LogChunk] = []
        start, first = 0, self.from_block
        while start < len(self.logs):
            end = min(start + max_logs, len(self.logs))
            block = self.logs[end - 1].block_number
            if end < len(self.logs):  # stop before a block that the cut would divide
                while end > start and self.logs[end - 1].block_number == block == (
                    self.logs[end].block_number
                ):
                    end -= 1
                if end == start:  # one block holds more than max_logs: keep it whole
                    end = start
                    while end < len(self.logs) and self.logs[end].block_number == block:
                        end += 1
            last = self.to_block if end == len(self.logs) else self.logs[end].block_number - 1
            # Every part carries the call's header: whichever commits first records it.
            parts.append(LogChunk(first, last, self.logs[start:end], self.cached, self.header))
            start, first = end, last + 1
        return parts if order == "asc" else parts[::-1]


class LogScanner:
    """Walks [low, high] with adaptive ranges, several calls in flight, in block order."""

    def __init__(
        self, client: RpcClient, ranges: AdaptiveRange, *, verify_above: int | None = None
    ) -> None:
        """`verify_above`: calls whose last block is above it are verified (a node behind
        the head answers blocks it has not seen with no logs); None: none are."""
        self.client = client
        self.ranges = ranges
        self.verify_above = verify_above

    def verified(self, chunk: tuple[int, int]) -> bool:
        return self.verify_above is not None and chunk[1] > self.verify_above

    def chunk_cost(self, call_filters: Sequence[LogFilter], chunk: tuple[int, int]) -> int:
        """CU of a chunk's calls, the verification's included."""
        chain = self.client.chain
        each = chain.cu_cost("eth_getLogs")
        if self.verified(chunk):
            each += chain.cu_cost("eth_getBlockByNumber")
        return len(call_filters) * each

    async def scan(
        self,
        call_filters: Sequence[LogFilter],
        low: int,
        high: int,
        budget: WindowBudget,
        *,
        order: Order = "asc",
    ) -> AsyncGenerator[LogChunk, None]:
        """Yield complete chunks in order; raises BudgetExhausted where the budget ends."""
        if order not in ORDERS:
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        in_flight: deque[tuple[tuple[int, int], asyncio.Task[Answered]]] = deque()
        cursor = low if order == "asc" else high

        def refill() -> None:
            nonlocal cursor
            while (
                len(in_flight) < self.client.chain.max_calls_in_flight
                and low <= cursor <= high
                and self._room_for_another([c for c, _ in in_flight])
            ):
                span = self.ranges.span_for(self.client.chain.max_logs_in_flight)
                chunk = next_chunk(cursor, span, low=low, high=high, order=order)
                # What the calls in flight cost is set aside (a task not yet run pays
                # when it sends), as is a retry's.
                reserved = sum(self.chunk_cost(call_filters, c) for c, _ in in_flight)
                if budget.remaining_cu - reserved < self.chunk_cost(call_filters, chunk):
                    return
                task = asyncio.create_task(self._fetch(call_filters, chunk, budget))
                in_flight.append((chunk, task))
                cursor = after_chunk(chunk, order=order)

        try:
            while True:
                refill()
                if not in_flight:
                    if low <= cursor <= high:
                        raise BudgetExhausted(f"no budget left to scan from block {cursor}")
                    return
                chunk, task = in_flight.popleft()
                # Once this answer is in, the next calls go out before it is handed on:
                # the provider works while it is matched and committed.
                async for done in self._settle(
                    call_filters, chunk, task, budget, order, answered=refill
                ):
                    yield done
        finally:
            for _, pending in in_flight:
                pending.cancel()
            await asyncio.gather(*(t for _, t in in_flight), return_exceptions=True)

    def _room_for_another(self, in_flight: Sequence[tuple[int, int]]) -> bool:
        """Whether one more call of the current span keeps the logs expected in flight
        (from the logs per block seen) under the chain's bound; one call always may, and
        until a first answer has shown how dense the chain is, only one."""
        if not in_flight:
            return True
        if self.ranges.logs_per_block is None:
            return False
        next_span = self.ranges.span_for(self.client.chain.max_logs_in_flight)
        blocks = next_span + sum(high - low + 1 for low, high in in_flight)
        return self.ranges.expected_logs(blocks) <= self.client.chain.max_logs_in_flight

    async def _fetch(
        self, call_filters: Sequence[LogFilter], chunk: tuple[int, int], budget: WindowBudget
    ) -> Answered:
        """All calls of one chunk; the chunk fails as a whole if any call fails."""
        if len(call_filters) == 1:
            return await self._call(call_filters[0], chunk, budget)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._call(f, chunk, budget)) for f in call_filters]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        answers = [task.result() for task in tasks]
        headers = {header for _, header in answers}
        if len(headers) > 1:  # the calls were answered from different forks
            raise NodeBehind(
                f"eth_getLogs up to block {chunk[1]}: the calls of one range name different "
                "blocks (nodes on different forks); asking again"
            )
        logs = [entry for answer, _ in answers for entry in answer]
        logs.sort(key=lambda entry: (entry.block_number, entry.log_index))
        return logs, headers.pop()

    async def _call(
        self, call_filter: LogFilter, chunk: tuple[int, int], budget: WindowBudget
    ) -> Answered:
        if not self.verified(chunk):
            return await self.client.get_logs(call_filter, chunk[0], chunk[1], budget), None
        return await self.client.get_verified_logs(call_filter, chunk[0], chunk[1], budget)

    async def _settle(
        self,
        call_filters: Sequence[LogFilter],
        chunk: tuple[int, int],
        task: asyncio.Task[Answered],
        budget: WindowBudget,
        order: Order,
        answered: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[LogChunk]:
        try:
            logs, header = await task
        except RangeTooLarge as too_large:
            async for done in self._split(call_filters, chunk, too_large, budget, order):
                yield done
            return
        self.ranges.record_success()
        self.ranges.record_density(chunk[1] - chunk[0] + 1, len(logs))
        answered()
        yield LogChunk(chunk[0], chunk[1], logs, header=header)

    async def _split(
        self,
        call_filters: Sequence[LogFilter],
        chunk: tuple[int, int],
        error: RangeTooLarge,
        budget: WindowBudget,
        order: Order,
    ) -> AsyncIterator[LogChunk]:
        span = chunk[1] - chunk[0] + 1
        if span == 1:
            raise SingleBlockTooLarge(
                f"block {chunk[0]} alone is too large for one eth_getLogs call: {error}",
                code=error.code,
            ) from error
        new_span = self.ranges.record_too_large(span, error.hint)
        log.info("rpc_range_split", blocks=span, new_span=new_span, error=str(error))
        cursor = chunk[0] if order == "asc" else chunk[1]
        while chunk[0] <= cursor <= chunk[1]:
            sub = next_chunk(cursor, self.ranges.span, low=chunk[0], high=chunk[1], order=order)
            task = asyncio.create_task(self._fetch(call_filters, sub, budget))
            async for done in self._settle(call_filters, sub, task, budget, order):
                yield done
            cursor = after_chunk(sub, order=order)
