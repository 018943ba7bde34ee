"""Filter fragments: what the chain's log cache records as fetched, and for which blocks.

A subscription's filter is an OR over addresses and over each topic position's
options; its fragments are the single (address, topic per position) choices of
that cross product, with `ANY` where the filter leaves a choice open. Once a
commit has stored every log a filter matches in some blocks, each of its
fragments is covered there. A later filter is covered in a block when every one
of its fragments is covered by some stored fragment that takes at least the same
logs: `ANY` or the same value in each position, and no more topic positions (a
filter with N positions needs logs with N topics, so a shorter one takes more).

Logs are stored only when some subscription matched them, so fragments are whole
subscription filters' pieces: never a merged call's filter, whose cross product
holds logs nobody stored. A filter with more than `MAX_FRAGMENTS` pieces is not
cached (neither recorded nor served): recording it would cost more than it saves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import reduce
from itertools import product

from indexer import intervals
from indexer.chain.filters import LogFilter
from indexer.intervals import Blocks

ANY = "*"
MAX_FRAGMENTS = 256


@dataclass(frozen=True, order=True)
class Fragment:
    """One (address, topics) choice of a filter; `ANY` for an open choice."""

    address: str
    topics: tuple[str, ...]

    @property
    def topics_key(self) -> str:
        """The topic positions as stored: joined by '/', `ANY` for an open one."""
        return "/".join(self.topics)

    @classmethod
    def from_row(cls, address: str, topics_key: str) -> Fragment:
        return cls(address, tuple(topics_key.split("/")) if topics_key else ())

    def takes_all_of(self, other: Fragment) -> bool:
        """Every log `other` matches, this one matches too."""
        if self.address not in (ANY, other.address):
            return False
        if len(self.topics) > len(other.topics):
            return False
        return all(
            mine in (ANY, theirs) for mine, theirs in zip(self.topics, other.topics, strict=False)
        )


def fragments_of(log_filter: LogFilter) -> list[Fragment] | None:
    """The filter's pieces, or None when there are more than `MAX_FRAGMENTS`."""
    addresses = sorted(log_filter.addresses) or [ANY]
    positions = [sorted(options) if options is not None else [ANY] for options in log_filter.topics]
    count = len(addresses)
    for options in positions:
        count *= len(options)
    if count > MAX_FRAGMENTS:
        return None
    return [
        Fragment(address, tuple(topics)) for address in addresses for topics in product(*positions)
    ]


def covered_blocks(wanted: Iterable[Fragment], stored: Mapping[Fragment, Blocks]) -> Blocks:
    """Blocks where every wanted fragment is covered by some stored fragment."""
    per_fragment = []
    for fragment in wanted:
        blocks = intervals.normalise(
            interval
            for other, covered in stored.items()
            if other.takes_all_of(fragment)
            for interval in covered
        )
        if not blocks:
            return []
        per_fragment.append(blocks)
    if not per_fragment:
        return []
    return reduce(intervals.overlap, per_fragment)
