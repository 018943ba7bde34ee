"""Log filters, merged eth_getLogs calls, and matching logs back to many subscriptions.

`LogFilter.matches` has eth_getLogs semantics: an address list (empty = any),
positional topics where each position is None (any) or a set (OR). Trailing
wildcards are dropped when a filter is built: providers disagree on whether
`[A, null]` requires a second topic (geth yes, anvil/alloy no), and dropping
them gives the one answer both agree on for the filter without them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from indexer.chain.logs import HexLike, Log, to_hex

K = TypeVar("K", bound=Hashable)
TopicSet = frozenset[str] | None


@dataclass(frozen=True)
class LogFilter:
    """One subscription's filter (or one merged call's filter)."""

    addresses: frozenset[str] = frozenset()  # empty = any address
    topics: tuple[TopicSet, ...] = ()

    @classmethod
    def build(
        cls,
        addresses: Iterable[HexLike] = (),
        topics: Sequence[Iterable[HexLike] | None] = (),
    ) -> LogFilter:
        """A filter from addresses and positional topics, as bytes or hex strings."""
        positions: list[TopicSet] = [
            frozenset(to_hex(t) for t in options) or None if options is not None else None
            for options in topics
        ]
        if len(positions) > 4:
            raise ValueError("a log has at most 4 topics")
        while positions and positions[-1] is None:
            positions.pop()
        return cls(frozenset(to_hex(a) for a in addresses), tuple(positions))

    @property
    def topic0(self) -> TopicSet:
        return self.topics[0] if self.topics else None

    def matches(self, log: Log) -> bool:
        if self.addresses and log.address not in self.addresses:
            return False
        if len(self.topics) > len(log.topics):
            return False
        return all(
            options is None or topic in options
            for options, topic in zip(self.topics, log.topics, strict=False)
        )

    def to_rpc(self, from_block: int, to_block: int) -> dict[str, Any]:
        """The eth_getLogs params object for this filter over [from_block, to_block]."""
        params: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
        if self.addresses:
            params["address"] = sorted(self.addresses)
        if self.topics:
            params["topics"] = [
                None if options is None else sorted(options) for options in self.topics
            ]
        return params


def subscription_filter(addresses: Sequence[bytes], topics: Sequence[Any]) -> LogFilter:
    """A stored subscription's filter: topics positions are null, a hex string or a list."""
    positions = [
        None if options is None else ([options] if isinstance(options, str) else options)
        for options in topics
    ]
    return LogFilter.build(addresses, positions)


def merge_filters(filters: Iterable[LogFilter], *, max_addresses: int = 1000) -> list[LogFilter]:
    """The eth_getLogs calls that together return every log any of `filters` matches.

    Addresses are unioned (no address filter if any filter takes every address)
    and split into calls of at most `max_addresses`; topic0 is an OR-list when
    every filter constrains it, else absent. Logs are matched back afterwards.
    """
    filters = list(filters)
    if not filters:
        return []
    topic0: TopicSet = None
    if all(f.topic0 is not None for f in filters):
        topic0 = frozenset().union(*(f.topic0 or () for f in filters))
    topics: tuple[TopicSet, ...] = (topic0,) if topic0 is not None else ()
    if any(not f.addresses for f in filters):
        return [LogFilter(frozenset(), topics)]
    addresses = sorted(frozenset().union(*(f.addresses for f in filters)))
    return [
        LogFilter(frozenset(addresses[i : i + max_addresses]), topics)
        for i in range(0, len(addresses), max_addresses)
    ]


_ANY = ""  # index key for "any address" / "any topic0"
# A filter left to check after the index: its key, the fewest topics a log needs,
# and the (position, options) pairs beyond topic0.
_Check = tuple[K, int, tuple[tuple[int, frozenset[str]], ...]]


@dataclass
class Matcher(Generic[K]):
    """Matches logs to many keyed filters.

    Filters are indexed by (address, topic0), with `_ANY` for a wildcard; a log
    looks up only the wildcard keys some filter uses. A filter that constrains
    nothing beyond those two is decided by the index alone; the others are
    checked on their remaining topic positions. A scan matches every log it
    fetches, so this is on the hot path.
    """

    filters: Mapping[K, LogFilter]
    _index: dict[tuple[str, str], tuple[list[K], list[_Check[K]]]] = field(init=False)
    _any_address: bool = field(init=False)
    _any_topic0: bool = field(init=False)

    def __post_init__(self) -> None:
        self._index = {}
        self._any_address = any(not f.addresses for f in self.filters.values())
        self._any_topic0 = any(f.topic0 is None for f in self.filters.values())
        for key, log_filter in self.filters.items():
            rest = tuple(
                (position, options)
                for position, options in enumerate(log_filter.topics)
                if position > 0 and options is not None
            )
            for address in log_filter.addresses or (_ANY,):
                for topic0 in log_filter.topic0 or (_ANY,):
                    decided, checks = self._index.setdefault((address, topic0), ([], []))
                    if rest:
                        checks.append((key, len(log_filter.topics), rest))
                    else:
                        decided.append(key)

    def match(self, log: Log) -> list[K]:
        topics = log.topics
        address = log.address
        found: list[K] = []
        if topics:
            keys = [(address, topics[0])]
            if self._any_topic0:
                keys.append((address, _ANY))
            if self._any_address:
                keys.append((_ANY, topics[0]))
        else:  # a log without topics only matches topic0 wildcards
            keys = [(address, _ANY)] if self._any_topic0 else []
        if self._any_address and self._any_topic0:
            keys.append((_ANY, _ANY))
        index = self._index
        for index_key in keys:
            entry = index.get(index_key)
            if entry is None:
                continue
            found.extend(entry[0])
            for key, needed, rest in entry[1]:
                if len(topics) < needed:
                    continue
                for position, options in rest:
                    if topics[position] not in options:
                        break
                else:
                    found.append(key)
        return found
