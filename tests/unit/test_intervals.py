"""Block intervals (`indexer.intervals`): tables of edge cases and one set-model property."""

from __future__ import annotations

from itertools import pairwise

import pytest
from asyncpg import Range
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.domain import Order
from indexer.intervals import (
    Blocks,
    Interval,
    contains,
    cursor_of,
    from_ranges,
    intersect,
    normalise,
    size,
    subtract,
    subtract_all,
    to_ranges,
)


def blocks_of(intervals: list[Interval]) -> set[int]:
    """Every block number the intervals cover, as a plain set."""
    return {block for low, high in intervals for block in range(low, high + 1)}


def assert_well_formed(blocks: Blocks) -> None:
    """Sorted, non-empty, disjoint and not touching: the `Blocks` invariant."""
    for low, high in blocks:
        assert low <= high, blocks
    for (_, high), (low, _) in pairwise(blocks):
        assert high + 1 < low, blocks


@pytest.mark.parametrize(
    ("given_intervals", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([(5, 5)], [(5, 5)], id="one-block"),
        pytest.param([(1, 3), (4, 6)], [(1, 6)], id="adjacent-merge"),
        pytest.param([(1, 3), (5, 6)], [(1, 3), (5, 6)], id="gap-of-one-kept"),
        pytest.param([(1, 5), (3, 8)], [(1, 8)], id="overlap-merge"),
        pytest.param([(1, 10), (3, 4)], [(1, 10)], id="contained-absorbed"),
        pytest.param([(7, 9), (1, 2), (4, 5)], [(1, 2), (4, 5), (7, 9)], id="unsorted-sorted"),
        pytest.param([(4, 3), (1, 2)], [(1, 2)], id="empty-dropped"),
        pytest.param([(9, 0)], [], id="only-empty"),
        pytest.param([(1, 2), (3, 4), (5, 6), (7, 8)], [(1, 8)], id="chain-of-adjacent"),
        pytest.param([(1, 2), (1, 2)], [(1, 2)], id="duplicates"),
        pytest.param([(0, 0), (1, 1)], [(0, 1)], id="block-zero"),
    ],
)
def test_normalise(given_intervals: list[Interval], expected: Blocks) -> None:
    assert normalise(given_intervals) == expected


@pytest.mark.parametrize(
    ("blocks", "low", "high", "expected"),
    [
        pytest.param([], 0, 10, [], id="nothing"),
        pytest.param([(10, 20)], 0, 100, [(10, 20)], id="window-covers-all"),
        pytest.param([(10, 20)], 12, 15, [(12, 15)], id="window-inside"),
        pytest.param([(10, 20)], 5, 12, [(10, 12)], id="clips-low-end"),
        pytest.param([(10, 20)], 18, 30, [(18, 20)], id="clips-high-end"),
        pytest.param([(10, 20)], 20, 30, [(20, 20)], id="touches-top-block"),
        pytest.param([(10, 20)], 0, 10, [(10, 10)], id="touches-bottom-block"),
        pytest.param([(10, 20)], 21, 30, [], id="just-above"),
        pytest.param([(10, 20)], 0, 9, [], id="just-below"),
        pytest.param(
            [(1, 3), (6, 8), (11, 13)], 2, 12, [(2, 3), (6, 8), (11, 12)], id="spans-gaps"
        ),
        pytest.param([(1, 3), (6, 8)], 4, 5, [], id="inside-a-gap"),
        pytest.param(
            [(10, 20)],
            15,
            12,
            [],
            id="empty-window-inside-an-interval",
        ),
    ],
)
def test_intersect(blocks: Blocks, low: int, high: int, expected: Blocks) -> None:
    assert intersect(blocks, low, high) == expected


@pytest.mark.parametrize(
    ("blocks", "low", "high", "expected"),
    [
        pytest.param([], 0, 10, [], id="nothing"),
        pytest.param([(1, 10)], 4, 6, [(1, 3), (7, 10)], id="middle"),
        pytest.param([(1, 10)], 0, 11, [], id="past-both-ends"),
        pytest.param([(1, 10)], 1, 10, [], id="exactly-all"),
        pytest.param([(1, 10)], 0, 3, [(4, 10)], id="past-low-end"),
        pytest.param([(1, 10)], 8, 20, [(1, 7)], id="past-high-end"),
        pytest.param([(1, 10)], 1, 1, [(2, 10)], id="lowest-block"),
        pytest.param([(1, 10)], 10, 10, [(1, 9)], id="highest-block"),
        pytest.param([(1, 10)], 11, 20, [(1, 10)], id="disjoint-above"),
        pytest.param([(1, 3), (6, 8), (11, 13)], 2, 12, [(1, 1), (13, 13)], id="across-gaps"),
        pytest.param([(1, 3), (6, 8), (11, 13)], 5, 9, [(1, 3), (11, 13)], id="whole-middle"),
        pytest.param(
            [(0, 10)],
            5,
            3,
            [(0, 10)],
            id="empty-window-inside-an-interval",
        ),
    ],
)
def test_subtract(blocks: Blocks, low: int, high: int, expected: Blocks) -> None:
    assert subtract(blocks, low, high) == expected


@pytest.mark.parametrize(
    ("blocks", "others", "expected"),
    [
        pytest.param([(1, 10)], [], [(1, 10)], id="nothing-to-remove"),
        pytest.param([(1, 10)], [(2, 3), (5, 5), (9, 12)], [(1, 1), (4, 4), (6, 8)], id="holes"),
        pytest.param([(1, 10)], [(1, 5), (6, 10)], [], id="adjacent-pieces-remove-all"),
        pytest.param([(1, 5), (10, 15)], [(3, 12)], [(1, 2), (13, 15)], id="one-across-gap"),
        pytest.param([(1, 10)], [(4, 6), (4, 6)], [(1, 3), (7, 10)], id="same-piece-twice"),
    ],
)
def test_subtract_all(blocks: Blocks, others: list[Interval], expected: Blocks) -> None:
    assert subtract_all(blocks, others) == expected


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        pytest.param([], 0, id="nothing"),
        pytest.param([(7, 7)], 1, id="one-block"),
        pytest.param([(0, 9)], 10, id="inclusive-both-ends"),
        pytest.param([(1, 3), (10, 19)], 13, id="two-intervals"),
    ],
)
def test_size(blocks: Blocks, expected: int) -> None:
    assert size(blocks) == expected


@pytest.mark.parametrize(
    ("blocks", "block", "expected"),
    [
        pytest.param([], 0, False, id="nothing"),
        pytest.param([(1, 3), (6, 8)], 1, True, id="low-end"),
        pytest.param([(1, 3), (6, 8)], 3, True, id="high-end"),
        pytest.param([(1, 3), (6, 8)], 7, True, id="second-interval"),
        pytest.param([(1, 3), (6, 8)], 4, False, id="gap"),
        pytest.param([(1, 3), (6, 8)], 0, False, id="below"),
        pytest.param([(1, 3), (6, 8)], 9, False, id="above"),
    ],
)
def test_contains(blocks: Blocks, block: int, expected: bool) -> None:
    assert contains(blocks, block) is expected


@pytest.mark.parametrize(
    ("blocks", "order", "expected"),
    [
        pytest.param([], "asc", None, id="empty-asc"),
        pytest.param([], "desc", None, id="empty-desc"),
        pytest.param([(5, 9)], "asc", 5, id="one-asc"),
        pytest.param([(5, 9)], "desc", 9, id="one-desc"),
        pytest.param([(1, 3), (6, 8), (20, 30)], "asc", 1, id="many-asc-lowest"),
        pytest.param([(1, 3), (6, 8), (20, 30)], "desc", 30, id="many-desc-highest"),
    ],
)
def test_cursor_of(blocks: Blocks, order: Order, expected: int | None) -> None:
    assert cursor_of(blocks, order) == expected


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([Range(10, 21)], [(10, 20)], id="canonical-upper-exclusive"),
        pytest.param([Range(10, 20, upper_inc=True)], [(10, 20)], id="upper-inclusive"),
        pytest.param([Range(9, 21, lower_inc=False)], [(10, 20)], id="lower-exclusive"),
        pytest.param(
            [Range(9, 20, lower_inc=False, upper_inc=True)],
            [(10, 20)],
            id="lower-exclusive-upper-inc",
        ),
        pytest.param([Range(5, 6)], [(5, 5)], id="one-block"),
        pytest.param([Range(1, 4), Range(4, 7)], [(1, 6)], id="adjacent-merged"),
        pytest.param([Range(20, 31), Range(1, 4)], [(1, 3), (20, 30)], id="unsorted-sorted"),
    ],
)
def test_from_ranges(ranges: list[Range[int]], expected: Blocks) -> None:
    assert from_ranges(ranges) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(Range(empty=True), id="empty"),
        pytest.param(Range(None, 10), id="no-lower-bound"),
        pytest.param(Range(10, None), id="no-upper-bound"),
    ],
)
def test_from_ranges_rejects_unbounded_or_empty(bad: Range[int]) -> None:
    with pytest.raises(ValueError, match="unbounded or empty"):
        from_ranges([Range(1, 3), bad])


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([(5, 5)], [Range(5, 6)], id="one-block"),
        pytest.param([(1, 3), (10, 20)], [Range(1, 4), Range(10, 21)], id="two-intervals"),
    ],
)
def test_to_ranges_is_canonical_half_open(blocks: Blocks, expected: list[Range[int]]) -> None:
    ranges = to_ranges(blocks)
    assert ranges == expected
    assert all(r.lower_inc and not r.upper_inc for r in ranges)


@pytest.mark.parametrize(
    "blocks",
    [
        pytest.param([], id="nothing"),
        pytest.param([(0, 0)], id="block-zero"),
        pytest.param([(1, 3), (5, 9), (100, 10_000_000)], id="several"),
        pytest.param([(18_000_000, 18_000_000)], id="high-block"),
    ],
)
def test_to_ranges_from_ranges_round_trip(blocks: Blocks) -> None:
    assert from_ranges(to_ranges(blocks)) == blocks


intervals_st = st.lists(
    st.tuples(st.integers(0, 40), st.integers(-2, 12)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=6,
)
window_st = st.tuples(st.integers(-2, 45), st.integers(0, 15)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=100, deadline=None, database=None)
@given(raw=intervals_st, window=window_st, others=intervals_st)
def test_operations_agree_with_sets_of_blocks(
    raw: list[Interval], window: tuple[int, int], others: list[Interval]
) -> None:
    low, high = window
    span = set(range(low, high + 1))

    blocks = normalise(raw)
    assert_well_formed(blocks)
    assert blocks_of(blocks) == blocks_of(raw)
    assert size(blocks) == len(blocks_of(raw))

    inside = intersect(blocks, low, high)
    assert_well_formed(inside)
    assert blocks_of(inside) == blocks_of(raw) & span

    outside = subtract(blocks, low, high)
    assert_well_formed(outside)
    assert blocks_of(outside) == blocks_of(raw) - span

    rest = subtract_all(blocks, normalise(others))
    assert_well_formed(rest)
    assert blocks_of(rest) == blocks_of(raw) - blocks_of(others)

    assert all(contains(blocks, b) == (b in blocks_of(raw)) for b in range(-3, 60))
    assert from_ranges(to_ranges(blocks)) == blocks
