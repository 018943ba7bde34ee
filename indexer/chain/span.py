"""Adaptive eth_getLogs block ranges, learned per chain and kept across windows."""

from __future__ import annotations

from dataclasses import dataclass

from indexer.chain.errors import RangeHint
from indexer.domain import Order


@dataclass
class AdaptiveRange:
    """How many blocks the next eth_getLogs call asks for.

    Starts at the chain's configured maximum; shrinks on range/result-size
    errors (to what the provider suggests, else by half); grows back (doubling)
    after `grow_after` successes in a row, never above the configured maximum
    nor above a hard cap the provider has named.
    """

    max_span: int
    span: int = 0
    grow_after: int = 5
    provider_cap: int | None = None
    _successes: int = 0
    # Logs per block seen lately (an average weighted towards the last calls); None
    # before the first answer. What a call of `span` blocks is expected to bring.
    logs_per_block: float | None = None

    def __post_init__(self) -> None:
        if self.max_span < 1:
            raise ValueError("max_span must be at least 1")
        self.span = min(self.span or self.max_span, self.max_span)

    @property
    def ceiling(self) -> int:
        return min(self.max_span, self.provider_cap or self.max_span)

    def record_density(self, blocks: int, logs: int) -> None:
        density = logs / max(1, blocks)
        previous = self.logs_per_block
        self.logs_per_block = density if previous is None else 0.5 * previous + 0.5 * density

    def expected_logs(self, blocks: int) -> float:
        return (self.logs_per_block or 0.0) * blocks

    def span_for(self, max_logs: int) -> int:
        """The span, or fewer blocks where the chain is so dense that a call of `span`
        blocks would bring more than `max_logs` logs (what one answer weighs in memory)."""
        if not self.logs_per_block:
            return self.span
        return max(1, min(self.span, int(max_logs / self.logs_per_block)))

    def record_success(self) -> None:
        self._successes += 1
        if self._successes >= self.grow_after and self.span < self.ceiling:
            self.span = min(self.ceiling, self.span * 2)
            self._successes = 0

    def record_too_large(self, requested_span: int, hint: RangeHint) -> int:
        """Shrink after a failed call over `requested_span` blocks; returns the new span."""
        self._successes = 0
        if hint.max_span is not None:
            self.provider_cap = hint.max_span
        if hint.suggested is not None:
            new_span = hint.suggested[1] - hint.suggested[0] + 1
        elif hint.max_span is not None:
            new_span = hint.max_span
        else:
            new_span = requested_span // 2
        self.span = max(1, min(new_span, requested_span - 1, self.ceiling))
        return self.span


def next_chunk(cursor: int, span: int, *, low: int, high: int, order: Order) -> tuple[int, int]:
    """The next [from, to] of at most `span` blocks from `cursor`, inside [low, high]."""
    if order == "desc":
        return max(low, cursor - span + 1), cursor
    return cursor, min(high, cursor + span - 1)


def after_chunk(chunk: tuple[int, int], *, order: Order) -> int:
    """The cursor once `chunk` is done."""
    return chunk[0] - 1 if order == "desc" else chunk[1] + 1
