"""Window planning (`indexer.planning`): who leads a slice, over which blocks, and ETAs."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from indexer.domain import Order
from indexer.intervals import Blocks, subtract
from indexer.store.credits import paid_cutoff
from indexer.window.eta import Estimate, QueuedWork, estimate_queue, estimate_request
from indexer.window.plan import FairShare, RequestState, plan_slice

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TICK = 12.0
COSTS = {"span": 1_000, "call_cu": 60, "window_cu": 12_000, "head_cu": 10}


def make_request(
    remaining: Blocks,
    *,
    order: Order = "asc",
    workspace: uuid.UUID | None = None,
    queued_minute: int = 0,
) -> RequestState:
    return RequestState(
        id=uuid.uuid4(),
        workspace_id=workspace or uuid.uuid4(),
        subscription_id=uuid.uuid4(),
        order=order,
        remaining=remaining,
        queued_at=T0 + timedelta(minutes=queued_minute),
    )


# -- RequestState ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "order", "cursor"),
    [
        pytest.param([(10, 20), (30, 40)], "asc", 10, id="asc-lowest"),
        pytest.param([(10, 20), (30, 40)], "desc", 40, id="desc-highest"),
        pytest.param([], "asc", None, id="asc-done"),
        pytest.param([], "desc", None, id="desc-done"),
    ],
)
def test_request_cursor_follows_remaining_and_order(
    remaining: Blocks, order: Order, cursor: int | None
) -> None:
    assert make_request(remaining, order=order).cursor == cursor


@pytest.mark.parametrize(
    ("remaining", "order", "safe_head", "segment"),
    [
        pytest.param([(10, 20)], "asc", 100, (10, 20), id="asc-all-safe"),
        pytest.param([(10, 20)], "asc", 15, (10, 15), id="asc-stops-at-safe-head"),
        pytest.param([(10, 20)], "asc", 10, (10, 10), id="asc-only-first-block-safe"),
        pytest.param([(10, 20)], "asc", 9, None, id="asc-nothing-safe"),
        pytest.param([(10, 20), (30, 40)], "asc", 100, (10, 20), id="asc-first-run-only"),
        pytest.param([(10, 20)], "desc", 20, (10, 20), id="desc-top-safe"),
        pytest.param([(10, 20)], "desc", 19, None, id="desc-waits-for-top"),
        pytest.param([(10, 20), (30, 40)], "desc", 40, (30, 40), id="desc-last-run-only"),
        pytest.param([(10, 20), (30, 40)], "desc", 35, None, id="desc-waits-though-lower-safe"),
        pytest.param([], "asc", 100, None, id="asc-done"),
        pytest.param([], "desc", 100, None, id="desc-done"),
    ],
)
def test_next_segment(
    remaining: Blocks, order: Order, safe_head: int, segment: tuple[int, int] | None
) -> None:
    assert make_request(remaining, order=order).next_segment(safe_head) == segment


# -- FairShare ------------------------------------------------------------------------


def test_charge_splits_a_shared_call_evenly_between_distinct_workspaces() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    share = FairShare()
    share.charge([a, a, b], 90)  # two requests of A and one of B shared the calls
    share.charge([a], 30)
    share.charge([], 60)  # nobody served: nobody pays, no division by zero
    assert share.spent == {a: 75.0, b: 45.0}


# -- plan_slice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([], id="no-requests"),
        pytest.param([make_request([(101, 200)])], id="asc-above-safe-head"),
        pytest.param([make_request([(50, 150)], order="desc")], id="desc-top-not-safe"),
        pytest.param([make_request([])], id="nothing-remaining"),
        pytest.param(
            [make_request([(101, 200)]), make_request([(0, 101)], order="desc")],
            id="several-none-safe",
        ),
    ],
)
def test_nothing_safe_yet_plans_no_slice(requests: list[RequestState]) -> None:
    assert plan_slice(requests, safe_head=100, share=FairShare(), quantum_blocks=10) is None


def test_a_long_request_yields_to_another_workspace_after_one_quantum() -> None:
    """A's 10M blocks queued first do not hold back B's 1,000 blocks queued later."""
    a = make_request([(1, 10_000_000)], queued_minute=0)
    b = make_request([(20_000_000, 20_000_999)], queued_minute=5)
    share = FairShare()
    safe_head, quantum = 30_000_000, 2_000

    first = plan_slice([a, b], safe_head=safe_head, share=share, quantum_blocks=quantum)
    assert first is not None
    assert (first.lead, first.low, first.high, first.order) == (a.id, 1, 2_000, "asc")
    assert first.served == {a.id: [(1, 2_000)]}

    a = replace(a, remaining=subtract(a.remaining, first.low, first.high))
    share.charge([a.workspace_id], 120)
    second = plan_slice([a, b], safe_head=safe_head, share=share, quantum_blocks=quantum)
    assert second is not None
    assert (second.lead, second.low, second.high) == (b.id, 20_000_000, 20_000_999)
    assert second.served == {b.id: [(20_000_000, 20_000_999)]}

    # B is done: A is alone again and scans its whole contiguous segment, uncapped.
    b = replace(b, remaining=[])
    share.charge([b.workspace_id], 60)
    third = plan_slice([a, b], safe_head=safe_head, share=share, quantum_blocks=quantum)
    assert third is not None
    assert (third.lead, third.low, third.high) == (a.id, 2_001, 10_000_000)


@pytest.mark.parametrize(
    ("safe_head", "expected"),
    [
        pytest.param(20_000_000, (1, 10_000_000), id="whole-segment"),
        pytest.param(5_000, (1, 5_000), id="up-to-safe-head"),
    ],
)
def test_a_single_workspace_is_not_capped(safe_head: int, expected: tuple[int, int]) -> None:
    workspace = uuid.uuid4()
    big = make_request([(1, 10_000_000)], workspace=workspace, queued_minute=0)
    other = make_request([(50_000_000, 50_000_010)], workspace=workspace, queued_minute=1)
    planned = plan_slice([big, other], safe_head=safe_head, share=FairShare(), quantum_blocks=100)
    assert planned is not None
    assert planned.lead == big.id
    assert (planned.low, planned.high) == expected


@pytest.mark.parametrize(
    ("spent_a", "spent_b", "leader"),
    [
        pytest.param(0.0, 0.0, "a", id="tie-oldest-workspace-first"),
        pytest.param(100.0, 100.0, "a", id="equal-spend-oldest-first"),
        pytest.param(100.0, 0.0, "b", id="a-served-b-leads"),
        pytest.param(100.0, 99.5, "b", id="b-slightly-less"),
        pytest.param(100.0, 200.0, "a", id="b-served-more"),
    ],
)
def test_the_least_served_workspace_leads(spent_a: float, spent_b: float, leader: str) -> None:
    a = make_request([(0, 99)], queued_minute=0)
    b = make_request([(1_000, 1_099)], queued_minute=1)
    share = FairShare({a.workspace_id: spent_a, b.workspace_id: spent_b})
    planned = plan_slice([b, a], safe_head=10_000, share=share, quantum_blocks=1_000)
    assert planned is not None
    assert planned.lead == {"a": a.id, "b": b.id}[leader]


@pytest.mark.parametrize(
    "minutes",
    [
        pytest.param((0, 1, 2), id="listed-oldest-first"),
        pytest.param((2, 1, 0), id="listed-newest-first"),
        pytest.param((5, 0, 3), id="oldest-in-the-middle"),
    ],
)
def test_a_workspace_is_served_first_in_first_out(minutes: tuple[int, int, int]) -> None:
    workspace = uuid.uuid4()
    requests = [
        make_request([(i * 1_000, i * 1_000 + 99)], workspace=workspace, queued_minute=m)
        for i, m in enumerate(minutes)
    ]
    oldest = min(requests, key=lambda r: r.queued_at)
    planned = plan_slice(requests, safe_head=100_000, share=FairShare(), quantum_blocks=10)
    assert planned is not None
    assert planned.lead == oldest.id
    assert (planned.low, planned.high) == oldest.remaining[0]
    assert planned.served == {oldest.id: oldest.remaining}


def test_a_waiting_descending_request_does_not_hold_back_its_workspace() -> None:
    workspace = uuid.uuid4()
    waiting = make_request([(900, 1_100)], order="desc", workspace=workspace, queued_minute=0)
    ready = make_request([(10, 20)], workspace=workspace, queued_minute=1)
    planned = plan_slice([waiting, ready], safe_head=1_000, share=FairShare(), quantum_blocks=5)
    assert planned is not None
    assert (planned.lead, planned.low, planned.high) == (ready.id, 10, 20)


def test_overlapping_requests_of_other_workspaces_ride_along_for_their_part() -> None:
    lead = make_request([(100, 10_000)], queued_minute=0)
    # Remaining blocks relative to the slice [100, 199] (the lead capped at 100 blocks).
    straddling = make_request([(150, 400)], queued_minute=1)
    holes = make_request([(50, 120), (140, 141), (180, 190), (250, 260)], queued_minute=2)
    inside = make_request([(130, 131)], queued_minute=3)
    covering = make_request([(0, 1_000_000)], queued_minute=4)
    touching_top = make_request([(199, 205)], queued_minute=5)
    above = make_request([(200, 400)], queued_minute=6)
    below = make_request([(0, 99)], queued_minute=7)
    in_gap_only = make_request([(10, 99), (200, 300)], queued_minute=8)
    requests = [lead, straddling, holes, inside, covering, touching_top, above, below, in_gap_only]

    planned = plan_slice(requests, safe_head=50_000, share=FairShare(), quantum_blocks=100)

    assert planned is not None
    assert (planned.lead, planned.low, planned.high) == (lead.id, 100, 199)
    assert planned.served == {
        lead.id: [(100, 199)],
        straddling.id: [(150, 199)],
        holes.id: [(100, 120), (140, 141), (180, 190)],
        inside.id: [(130, 131)],
        covering.id: [(100, 199)],
        touching_top.id: [(199, 199)],
    }


@pytest.mark.parametrize(
    ("remaining", "safe_head", "expected"),
    [
        pytest.param([(0, 10_000)], 50_000, (9_001, 10_000), id="capped-from-the-top"),
        pytest.param([(0, 500)], 50_000, (0, 500), id="short-not-capped"),
        pytest.param([(0, 100), (5_000, 9_000)], 50_000, (8_001, 9_000), id="top-run-capped"),
        pytest.param([(0, 100), (8_500, 9_000)], 50_000, (8_500, 9_000), id="top-run-whole"),
    ],
)
def test_a_descending_lead_scans_the_top_of_its_remaining_blocks(
    remaining: Blocks, safe_head: int, expected: tuple[int, int]
) -> None:
    lead = make_request(remaining, order="desc", queued_minute=0)
    other = make_request([(40_000, 40_010)], queued_minute=1)  # a second workspace: capped
    planned = plan_slice(
        [lead, other], safe_head=safe_head, share=FairShare(), quantum_blocks=1_000
    )
    assert planned is not None
    assert (planned.lead, planned.order) == (lead.id, "desc")
    assert (planned.low, planned.high) == expected
    assert planned.served == {lead.id: [expected]}


# -- paid_cutoff ----------------------------------------------------------------------

ASC_MATCHES = [(10, 0), (10, 1), (12, 0), (15, 3)]
DESC_MATCHES = [(15, 3), (12, 0), (10, 1), (10, 0)]


@pytest.mark.parametrize(
    ("matches", "balance", "expected"),
    [
        pytest.param(ASC_MATCHES, 4, (4, None), id="exact-balance"),
        pytest.param(ASC_MATCHES, 1_000, (4, None), id="plenty"),
        pytest.param([], 0, (0, None), id="no-matches-no-balance"),
        pytest.param(ASC_MATCHES, 0, (0, 10), id="broke-cut-at-first"),
        pytest.param(ASC_MATCHES, 2, (2, 12), id="cut-at-next-block"),
        pytest.param(ASC_MATCHES, 3, (3, 15), id="cut-at-last"),
        pytest.param(ASC_MATCHES, 1, (1, 10), id="cut-inside-a-block"),
        pytest.param(DESC_MATCHES, 0, (0, 15), id="desc-broke"),
        pytest.param(DESC_MATCHES, 1, (1, 12), id="desc-partial"),
        pytest.param(DESC_MATCHES, 4, (4, None), id="desc-all"),
    ],
)
def test_paid_cutoff(
    matches: list[tuple[int, int]], balance: int, expected: tuple[int, int | None]
) -> None:
    assert paid_cutoff(matches, balance) == expected


# -- estimates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "head_cu", "expected"),
    [
        pytest.param(0, 10, (0, 0, 0), id="nothing"),
        pytest.param(1, 10, (1, 70, 1), id="one-block-one-call"),
        pytest.param(1_000, 10, (1, 70, 1), id="one-full-span"),
        pytest.param(1_001, 10, (2, 130, 1), id="span-plus-one"),
        pytest.param(199_000, 10, (199, 199 * 60 + 10, 1), id="199-calls-fit-a-window"),
        pytest.param(199_001, 10, (200, 200 * 60 + 20, 2), id="200th-call-next-window"),
        pytest.param(200_000, 0, (200, 200 * 60, 1), id="no-head-cost-200-fit"),
    ],
)
def test_estimate_request(blocks: int, head_cu: int, expected: tuple[int, int, int]) -> None:
    costs = {**COSTS, "head_cu": head_cu}
    assert estimate_request(blocks, **costs) == expected


def test_estimate_request_makes_one_call_a_window_on_a_tiny_budget() -> None:
    assert estimate_request(3_000, span=1_000, call_cu=60, window_cu=50, head_cu=10) == (3, 210, 3)


def at(ticks: int) -> datetime:
    return T0 + timedelta(seconds=ticks * TICK)


@pytest.mark.parametrize(
    ("blocks", "expected_ticks"),
    [
        pytest.param(
            [100_000, 99_000, 1, 0, 500_000],
            [(0, 1), (0, 1), (1, 2), (1, 2), (1, 4)],
            id="second-window-starts-a-tick-later",
        ),
        pytest.param([199_000, 1], [(0, 1), (1, 2)], id="exactly-one-window-then-next"),
        pytest.param([0, 0, 1_000], [(0, 1), (0, 1), (0, 1)], id="empty-requests-first"),
        pytest.param([398_000, 0], [(0, 2), (2, 3)], id="empty-after-two-windows"),
        pytest.param([1], [(0, 1)], id="one-call"),
    ],
)
def test_estimate_queue(blocks: list[int], expected_ticks: list[tuple[int, int]]) -> None:
    queue = [QueuedWork(uuid.uuid4(), n) for n in blocks]
    estimates = estimate_queue(queue, now=T0, tick_seconds=TICK, **COSTS)
    assert estimates == {
        work.request_id: Estimate(at(start), at(finish))
        for work, (start, finish) in zip(queue, expected_ticks, strict=True)
    }


def test_estimate_queue_of_nothing() -> None:
    assert estimate_queue([], now=T0, tick_seconds=TICK, **COSTS) == {}
