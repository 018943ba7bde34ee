"""A chunk's commit as the store sees it: the context a window hands over, the plan
worked out before the transaction opens, and the bookkeeping both ways of storing
matches share.

A window hands the store a `CommitContext` (its connection, chain, window id, the
requests it serves, their subscriptions as `Target`s, the outbox limits) instead
of itself: nothing in `store/` imports the window (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from indexer import intervals
from indexer.chain.filters import LogFilter, Matcher
from indexer.chain.logs import Log
from indexer.chain.scanner import LogChunk
from indexer.db.pool import Connection
from indexer.domain import Order
from indexer.intervals import Blocks
from indexer.outbox.bodies import EventDecoder
from indexer.outbox.enqueue import OutboxLimits
from indexer.store import staging


class ServedRequest(Protocol):
    """What the store reads of a request a window serves (`window.plan.RequestState`)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def workspace_id(self) -> uuid.UUID: ...
    @property
    def subscription_id(self) -> uuid.UUID: ...
    @property
    def order(self) -> Order: ...
    @property
    def remaining(self) -> Blocks: ...
    @property
    def cursor(self) -> int | None: ...
    @property
    def queued_at(self) -> datetime: ...
    @property
    def recount_block(self) -> int | None: ...
    @property
    def follows(self) -> bool: ...
    @property
    def following(self) -> bool: ...
    def cursor_after(self, remaining: Blocks) -> int | None: ...


@dataclass(frozen=True)
class Target:
    """A subscription as a window scans for it and the store stores for it."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    filter: LogFilter
    sends_webhooks: bool
    decoder: EventDecoder


@dataclass(frozen=True)
class CommitContext:
    """What a commit may read of the window that asks for it."""

    conn: Connection
    chain_id: int
    window_id: int
    requests: Mapping[uuid.UUID, ServedRequest]  # the window's live requests (a live view)
    targets: Mapping[uuid.UUID, Target]
    redeliver: AbstractSet[uuid.UUID]  # requests that also deliver stored matches again
    outbox: OutboxLimits
    take_cu: Callable[[], int]  # CU spent since the previous commit, charged to this one


class Candidate(NamedTuple):
    """A log one subscription's filter matched, inside a served request's blocks."""

    subscription_id: uuid.UUID
    log: Log


@dataclass
class ChunkPlan:
    """A chunk's commit, worked out before its transaction opens."""

    chunk: LogChunk
    order: Order  # the slice's scan order: credits are paid in it
    parts: dict[uuid.UUID, Blocks]  # live request -> its blocks in this chunk
    candidates: list[Candidate]  # in scan order
    requests_by_subscription: dict[uuid.UUID, list[uuid.UUID]]  # oldest request first
    payload: bytes | None = None  # the candidates as COPY text for `window_matches`

    def owner(self, subscription_id: uuid.UUID, block: int) -> uuid.UUID | None:
        """The request a new match is stored and charged under: the oldest whose part holds it."""
        ids = self.requests_by_subscription.get(subscription_id, ())
        if len(ids) == 1:
            return ids[0]  # the common case: every candidate lies in its one request's part
        for request_id in ids:
            if intervals.contains(self.parts[request_id], block):
                return request_id
        return None

    def staged(self) -> bytes:
        """The candidates with their owning requests, as COPY text (made once)."""
        if self.payload is None:
            self.payload = staging.stage_payload(
                (c.subscription_id, self.owner(c.subscription_id, c.log.block_number), c.log)
                for c in self.candidates
            )
        return self.payload


def plan_chunk(
    ctx: CommitContext,
    chunk: LogChunk,
    order: Order,
    parts: dict[uuid.UUID, Blocks],
    matcher: Matcher[uuid.UUID],
) -> ChunkPlan:
    """The (subscription, log) candidates inside the live requests' blocks."""
    blocks_of: dict[uuid.UUID, Blocks] = defaultdict(list)
    for request_id, part in parts.items():
        blocks_of[ctx.requests[request_id].subscription_id].extend(part)
    candidates = []
    for entry in chunk.logs:
        for subscription_id in matcher.match(entry):
            if intervals.contains(blocks_of.get(subscription_id, ()), entry.block_number):
                candidates.append(Candidate(subscription_id, entry))
    if order == "desc":
        candidates.sort(key=lambda c: (-c.log.block_number, c.log.log_index))
    by_subscription: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for request_id in sorted(parts, key=lambda r: (ctx.requests[r].queued_at, str(r))):
        by_subscription[ctx.requests[request_id].subscription_id].append(request_id)
    return ChunkPlan(chunk, order, parts, candidates, by_subscription)


@dataclass
class Tally:
    """The commit's bookkeeping, shared by both ways of storing matches."""

    plan: ChunkPlan
    done: dict[uuid.UUID, Blocks]  # the parts, minus blocks left unpaid
    clipped: set[uuid.UUID] = field(default_factory=set)  # requests cut short by credits
    paused_workspaces: set[uuid.UUID] = field(default_factory=set)
    charges: dict[uuid.UUID, Charge] = field(default_factory=dict)  # by workspace
    found: Counter[uuid.UUID] = field(default_factory=Counter)  # by request
    new: Counter[uuid.UUID] = field(default_factory=Counter)
    duplicates: Counter[uuid.UUID] = field(default_factory=Counter)
    # Matches stored under a request before it paused for credits mid-block, found
    # again now: (subscription, block, log index) -> that request. Not counted again.
    own: dict[tuple[uuid.UUID, int, int], uuid.UUID] = field(default_factory=dict)

    @classmethod
    def start(cls, plan: ChunkPlan) -> Tally:
        return cls(plan, {request_id: list(part) for request_id, part in plan.parts.items()})

    def requests_of(self, subscription_id: uuid.UUID, block: int, *, paid: bool) -> list[uuid.UUID]:
        """The subscription's requests whose blocks hold this block, oldest first: in
        their parts (`paid`: what new matches count against) or in what they finish."""
        blocks = self.plan.parts if paid else self.done
        ids = self.plan.requests_by_subscription.get(subscription_id, ())
        if len(ids) == 1 and (paid or ids[0] not in self.clipped):
            return [ids[0]]
        return [r for r in ids if intervals.contains(blocks[r], block)]

    def charge(self, workspace_id: uuid.UUID, count: int, request_id: uuid.UUID | None) -> None:
        """`count` more credits for the workspace; the ledger line names its first request."""
        charge = self.charges.get(workspace_id, Charge(0, None))
        self.charges[workspace_id] = Charge(charge.credits + count, charge.request_id or request_id)

    def cut_workspace(
        self, requests: Mapping[uuid.UUID, ServedRequest], workspace_id: uuid.UUID, cut: int
    ) -> None:
        """The workspace's requests stop at block `cut`: scanned again after a top-up."""
        self.paused_workspaces.add(workspace_id)
        for request_id, part in self.done.items():
            if requests[request_id].workspace_id != workspace_id or not part:
                continue
            self.clipped.add(request_id)
            if self.plan.order == "desc":
                self.done[request_id] = intervals.intersect(part, cut + 1, part[-1][1])
            else:
                self.done[request_id] = intervals.intersect(part, part[0][0], cut - 1)

    def count(self, paid: list[StoredMatch], duplicates: list[StoredMatch]) -> None:
        """Per request: matches found, new (under their owner) and duplicate."""
        for match in paid:
            block = match.log.block_number
            owner = self.plan.owner(match.subscription_id, block)
            if owner is not None:
                self.new[owner] += 1
            for request_id in self.requests_of(match.subscription_id, block, paid=True):
                self.found[request_id] += 1
        for match in duplicates:
            key = (match.subscription_id, match.log.block_number, match.log.log_index)
            for request_id in self.requests_of(
                match.subscription_id, match.log.block_number, paid=False
            ):
                if self.own.get(key) == request_id:
                    continue  # counted when this request stored it, before its pause
                self.found[request_id] += 1
                self.duplicates[request_id] += 1

    @property
    def new_matches(self) -> int:
        return sum(charge.credits for charge in self.charges.values())


class Charge(NamedTuple):
    """Credits a commit takes from one workspace, and the request its ledger line names."""

    credits: int
    request_id: uuid.UUID | None


class StoredMatch(NamedTuple):
    """A candidate once its log has a row: new or already stored for the subscription."""

    subscription_id: uuid.UUID
    log: Log

    @property
    def key(self) -> tuple[uuid.UUID, int, int]:
        """(subscription, block number, log index): the match's identity."""
        return (self.subscription_id, self.log.block_number, self.log.log_index)
