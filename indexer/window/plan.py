"""Pure planning for one window: who is served next, over which blocks, and when
queued work will likely start and finish.

Nothing here touches the database, the network or the clock; the window
(`indexer.window.run`) feeds it state and applies its decisions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from indexer import intervals
from indexer.domain import Order
from indexer.intervals import Blocks


@dataclass
class RequestState:
    """A runnable backfill request as the window sees it."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    subscription_id: uuid.UUID
    order: Order
    remaining: Blocks
    queued_at: datetime
    # The first block after a pause for credits: it may hold matches this request
    # already paid for (a pause can fall in the middle of a block).
    recount_block: int | None = None
    # A follow request: the block after its range as extended to the safe head (its
    # cursor while nothing is left), and whether it has caught up (`following`).
    follow_next: int | None = None
    following: bool = False
    cursor: int | None = field(init=False)  # derived from `remaining`

    def __post_init__(self) -> None:
        self.cursor = self.cursor_after(self.remaining)

    @property
    def follows(self) -> bool:
        return self.follow_next is not None

    def cursor_after(self, remaining: Blocks) -> int | None:
        """The next block to scan once `remaining` is what is left: a follow request
        that has caught up waits at the block after its range."""
        cursor = intervals.cursor_of(remaining, self.order)
        return self.follow_next if cursor is None else cursor

    def next_segment(self, safe_head: int) -> tuple[int, int] | None:
        """The contiguous run of blocks this request scans next, if it is safe yet.

        Ascending requests scan up to the safe head and wait there; descending
        ones start at their top block, so they wait until it is safe.
        """
        if not self.remaining:
            return None
        if self.order == "desc":
            low, high = self.remaining[-1]
            return (low, high) if high <= safe_head else None
        low, high = self.remaining[0]
        return (low, min(high, safe_head)) if low <= safe_head else None


@dataclass(frozen=True)
class Slice:
    """Blocks [low, high] scanned in `order` for one lead request and its companions."""

    low: int
    high: int
    order: Order
    lead: uuid.UUID
    served: Mapping[uuid.UUID, Blocks]  # request id -> its blocks inside the slice


@dataclass
class FairShare:
    """CU each workspace has been served this window (its part of shared calls)."""

    spent: dict[uuid.UUID, float] = field(default_factory=dict)

    def charge(self, workspaces: Iterable[uuid.UUID], cu: int) -> None:
        served = sorted(set(workspaces))
        for workspace in served:
            self.spent[workspace] = self.spent.get(workspace, 0.0) + cu / len(served)


def plan_slice(
    requests: Sequence[RequestState],
    *,
    safe_head: int,
    share: FairShare,
    quantum_blocks: int,
) -> Slice | None:
    """The next slice: the least-served workspace's oldest request leads.

    The lead scans its next segment, capped at `quantum_blocks` while another
    workspace also has work (a long request queued first must not hold back a
    short one of another workspace). Every other request whose remaining blocks
    overlap the slice is served by the same calls, for its part of it.
    """
    ready = [r for r in requests if r.next_segment(safe_head) is not None]
    if not ready:
        return None
    oldest: dict[uuid.UUID, RequestState] = {}
    for request in sorted(ready, key=lambda r: (r.queued_at, str(r.id))):
        oldest.setdefault(request.workspace_id, request)
    lead = min(
        oldest.values(),
        key=lambda r: (share.spent.get(r.workspace_id, 0.0), r.queued_at, str(r.id)),
    )
    segment = lead.next_segment(safe_head)
    assert segment is not None
    low, high = segment
    if len(oldest) > 1 and high - low + 1 > quantum_blocks:
        if lead.order == "desc":
            low = high - quantum_blocks + 1
        else:
            high = low + quantum_blocks - 1
    served = {}
    for request in requests:
        part = intervals.intersect(request.remaining, low, min(high, safe_head))
        if part:
            served[request.id] = part
    return Slice(low, high, lead.order, lead.id, served)
