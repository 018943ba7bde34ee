"""Filter fragments: the pieces the log cache records, and which pieces cover which."""

from __future__ import annotations

import pytest

from indexer import intervals
from indexer.chain.filters import LogFilter
from indexer.chain.fragments import ANY, MAX_FRAGMENTS, Fragment, covered_blocks, fragments_of

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20
T, U, V = ("0x" + c * 64 for c in "123")


def test_a_filter_is_the_cross_product_of_its_choices() -> None:
    pieces = fragments_of(LogFilter.build([A, B], [[T, U], None, [V]]))
    assert pieces == [
        Fragment(A, (T, ANY, V)),
        Fragment(A, (U, ANY, V)),
        Fragment(B, (T, ANY, V)),
        Fragment(B, (U, ANY, V)),
    ]
    assert fragments_of(LogFilter.build()) == [Fragment(ANY, ())]
    # trailing wildcards say nothing (LogFilter drops them), so the pieces lack them too
    assert fragments_of(LogFilter.build([A], [[T], None])) == [Fragment(A, (T,))]


def test_a_filter_with_too_many_pieces_is_not_cached() -> None:
    addresses = [f"0x{i:040x}" for i in range(MAX_FRAGMENTS + 1)]
    assert fragments_of(LogFilter.build(addresses)) is None
    assert fragments_of(LogFilter.build(addresses[:MAX_FRAGMENTS])) is not None


@pytest.mark.parametrize(
    ("stored", "wanted", "covers"),
    [
        (Fragment(ANY, ()), Fragment(A, (T, U)), True),
        (Fragment(A, ()), Fragment(A, (T,)), True),
        (Fragment(A, (T,)), Fragment(A, ()), False),  # a narrower piece lacks logs
        (Fragment(A, (T,)), Fragment(B, (T,)), False),
        (Fragment(A, (ANY, U)), Fragment(A, (T, U)), True),
        (Fragment(A, (T, U)), Fragment(A, (T, ANY)), False),
        # [T, *] needs logs with two topics: it lacks the one-topic logs [T] takes
        (Fragment(A, (T, ANY)), Fragment(A, (T,)), False),
        (Fragment(A, (T,)), Fragment(A, (T, ANY, V)), True),
    ],
)
def test_which_piece_takes_all_the_logs_of_which(
    stored: Fragment, wanted: Fragment, covers: bool
) -> None:
    assert stored.takes_all_of(wanted) is covers


def test_a_filter_is_covered_where_every_piece_is() -> None:
    stored = {
        Fragment(A, (T,)): [(10, 30)],
        Fragment(B, ()): [(20, 40)],
        Fragment(ANY, (U,)): [(0, 12)],
    }
    assert covered_blocks(fragments_of(LogFilter.build([A, B], [[T]])) or [], stored) == [(20, 30)]
    # A's [U] piece only by the any-address one; B's by that one or by B's own
    assert covered_blocks(fragments_of(LogFilter.build([A, B], [[U]])) or [], stored) == [(0, 12)]
    assert covered_blocks(fragments_of(LogFilter.build([A], [[T, U]])) or [], stored) == [(10, 12)]
    assert covered_blocks(fragments_of(LogFilter.build([B], [[V]])) or [], stored) == [(20, 40)]
    assert covered_blocks(fragments_of(LogFilter.build([A])) or [], stored) == []
    assert covered_blocks([], stored) == []


def test_stored_pieces_read_back_as_they_were_written() -> None:
    for piece in (Fragment(ANY, ()), Fragment(A, (T, ANY, V)), Fragment(B, (ANY,))):
        assert Fragment.from_row(piece.address, piece.topics_key) == piece


def test_overlap_of_two_block_sets() -> None:
    assert intervals.overlap([(1, 5), (8, 12)], [(4, 9), (11, 20)]) == [(4, 5), (8, 9), (11, 12)]
    assert intervals.overlap([(1, 5)], []) == []
