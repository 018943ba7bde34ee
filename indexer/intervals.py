"""Block ranges as sorted lists of disjoint inclusive intervals.

A request's remaining blocks and a subscription's coverage are kept in
PostgreSQL as int8multirange; in Python they are `Blocks`: [(low, high), ...],
sorted, disjoint, not touching. Pure functions, tested with tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asyncpg import Range

from indexer.domain import Order

Interval = tuple[int, int]
Blocks = list[Interval]


def normalise(intervals: Iterable[Interval]) -> Blocks:
    """Sort and merge overlapping or adjacent intervals; drop empty ones."""
    merged: Blocks = []
    for low, high in sorted(i for i in intervals if i[0] <= i[1]):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def intersect(blocks: Sequence[Interval], low: int, high: int) -> Blocks:
    """The part of `blocks` inside [low, high] (nothing if the window is empty)."""
    if low > high:
        return []
    return [(max(a, low), min(b, high)) for a, b in blocks if a <= high and b >= low]


def subtract(blocks: Sequence[Interval], low: int, high: int) -> Blocks:
    """`blocks` without [low, high] (unchanged if the window is empty)."""
    if low > high:
        return list(blocks)
    result: Blocks = []
    for a, b in blocks:
        if b < low or a > high:
            result.append((a, b))
            continue
        if a < low:
            result.append((a, low - 1))
        if b > high:
            result.append((high + 1, b))
    return result


def overlap(blocks: Sequence[Interval], others: Sequence[Interval]) -> Blocks:
    """The blocks in both sets."""
    return normalise(part for low, high in others for part in intersect(blocks, low, high))


def subtract_all(blocks: Sequence[Interval], others: Iterable[Interval]) -> Blocks:
    result = list(blocks)
    for low, high in others:
        result = subtract(result, low, high)
    return result


def size(blocks: Iterable[Interval]) -> int:
    return sum(b - a + 1 for a, b in blocks)


def contains(blocks: Sequence[Interval], block: int) -> bool:
    for low, high in blocks:  # a loop, not any(): called once per match of a commit
        if low <= block <= high:
            return True
    return False


def cursor_of(blocks: Sequence[Interval], order: Order) -> int | None:
    """The next block a scan in `order` takes: the lowest (asc) or highest (desc)."""
    if not blocks:
        return None
    return blocks[-1][1] if order == "desc" else blocks[0][0]


def from_ranges(ranges: Iterable[Range[int]]) -> Blocks:
    """asyncpg's int8multirange value (canonical [low, high) ranges) as Blocks."""
    blocks: Blocks = []
    for r in ranges:
        if r.isempty or r.lower is None or r.upper is None:
            raise ValueError(f"an unbounded or empty block range: {r!r}")
        low = r.lower if r.lower_inc else r.lower + 1
        high = r.upper if r.upper_inc else r.upper - 1
        blocks.append((low, high))
    return normalise(blocks)


def to_ranges(blocks: Iterable[Interval]) -> list[Range[int]]:
    """Blocks as asyncpg ranges, for an int8multirange parameter."""
    return [Range(low, high + 1) for low, high in blocks]
