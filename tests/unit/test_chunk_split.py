"""A big answer is committed in whole-block parts of bounded size: every log once, in
order, no block cut in two, the parts covering the answered range without a gap."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from indexer.chain.logs import Log
from indexer.chain.scanner import LogChunk


def log(block: int, index: int) -> Log:
    return Log(block, "0x" + "ab" * 32, index, "0x" + "cd" * 32, 0, "0x" + "11" * 20, (), "0x")


def chunk_of(counts: list[int], first: int = 100) -> LogChunk:
    logs = [log(first + b, i) for b, n in enumerate(counts) for i in range(n)]
    return LogChunk(first, first + len(counts) - 1, logs)


@given(
    counts=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=40),
    max_logs=st.integers(min_value=1, max_value=30),
    order=st.sampled_from(["asc", "desc"]),
)
def test_parts_hold_every_log_once_cut_only_between_blocks(
    counts: list[int], max_logs: int, order: str
) -> None:
    whole = chunk_of(counts)
    parts = whole.split(max_logs, order)  # type: ignore[arg-type]
    in_block_order = parts if order == "asc" else parts[::-1]

    assert [entry for part in in_block_order for entry in part.logs] == whole.logs
    assert in_block_order[0].from_block == whole.from_block
    assert in_block_order[-1].to_block == whole.to_block
    for before, after in itertools.pairwise(in_block_order):
        assert after.from_block == before.to_block + 1  # no gap, no overlap
    for part in parts:
        assert all(part.from_block <= e.block_number <= part.to_block for e in part.logs)
        blocks = {e.block_number for e in part.logs}
        assert len(part.logs) <= max_logs or len(blocks) == 1  # bounded, or one big block


def test_a_chunk_within_the_bound_is_not_split() -> None:
    whole = chunk_of([3, 0, 2])
    assert whole.split(5) == [whole]
    assert [(p.from_block, p.to_block) for p in chunk_of([3, 0, 2, 4]).split(5)] == [
        (100, 102),
        (103, 103),
    ]
