"""Logs, log filters, and matching logs back to many subscriptions in memory.

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

from indexer.rpc_errors import ProviderFault

K = TypeVar("K", bound=Hashable)
TopicSet = frozenset[bytes] | None


@dataclass(slots=True, eq=True)
class Log:
    """One log as eth_getLogs returned it, mapped to plain types (treat as immutable).

    Not a frozen dataclass: frozen ones set each field through object.__setattr__,
    which made parsing the slowest step of a scan.
    """

    block_number: int
    block_hash: bytes
    log_index: int
    transaction_hash: bytes
    transaction_index: int
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


def _hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)


def parse_log(raw: Mapping[str, Any], *, from_block: int, to_block: int) -> Log:
    """Map one JSON-RPC log; refuse what a correct provider cannot send."""
    block_hash = raw.get("blockHash")
    if not block_hash or raw.get("removed"):
        raise ProviderFault(f"eth_getLogs returned a pending or removed log: {dict(raw)!r}")
    block_number = int(raw["blockNumber"], 16)
    if not from_block <= block_number <= to_block:
        raise ProviderFault(
            f"eth_getLogs for blocks {from_block}-{to_block} returned a log of block {block_number}"
        )
    return Log(
        block_number,
        _hex_bytes(block_hash),
        int(raw["logIndex"], 16),
        _hex_bytes(raw["transactionHash"]),
        int(raw["transactionIndex"], 16),
        _hex_bytes(raw["address"]),
        tuple([_hex_bytes(topic) for topic in raw["topics"]]),
        _hex_bytes(raw["data"]),
    )


@dataclass(frozen=True)
class LogFilter:
    """One subscription's filter (or one merged call's filter)."""

    addresses: frozenset[bytes] = frozenset()  # empty = any address
    topics: tuple[TopicSet, ...] = ()

    @classmethod
    def build(
        cls,
        addresses: Iterable[bytes] = (),
        topics: Sequence[Iterable[bytes] | None] = (),
    ) -> LogFilter:
        positions: list[TopicSet] = [
            None if options is None or not frozenset(options) else frozenset(options)
            for options in topics
        ]
        if len(positions) > 4:
            raise ValueError("a log has at most 4 topics")
        while positions and positions[-1] is None:
            positions.pop()
        return cls(frozenset(addresses), tuple(positions))

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
            params["address"] = ["0x" + a.hex() for a in sorted(self.addresses)]
        if self.topics:
            params["topics"] = [
                None if options is None else ["0x" + t.hex() for t in sorted(options)]
                for options in self.topics
            ]
        return params


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


_ANY = b""  # index key for "any address" / "any topic0"


@dataclass
class Matcher(Generic[K]):
    """Matches logs to many keyed filters.

    Filters are indexed by (address, topic0), with `_ANY` for a wildcard. A filter
    that constrains nothing beyond those two is decided by the index alone; the
    others are checked on their remaining topic positions. A scan matches every
    log it fetches, so this is on the hot path.
    """

    filters: Mapping[K, LogFilter]
    _decided: dict[tuple[bytes, bytes], list[K]] = field(init=False)
    _to_check: dict[tuple[bytes, bytes], list[tuple[K, LogFilter]]] = field(init=False)

    def __post_init__(self) -> None:
        self._decided, self._to_check = {}, {}
        for key, log_filter in self.filters.items():
            for address in log_filter.addresses or (_ANY,):
                for topic0 in log_filter.topic0 or (_ANY,):
                    if len(log_filter.topics) <= 1:
                        self._decided.setdefault((address, topic0), []).append(key)
                    else:
                        entry = (key, log_filter)
                        self._to_check.setdefault((address, topic0), []).append(entry)

    def match(self, log: Log) -> list[K]:
        found: list[K] = []
        for index_key in _index_keys(log.address, log.topics[0] if log.topics else None):
            found.extend(self._decided.get(index_key, ()))
            for key, log_filter in self._to_check.get(index_key, ()):
                if log_filter.matches(log):
                    found.append(key)
        return found


def _index_keys(address: bytes, topic0: bytes | None) -> tuple[tuple[bytes, bytes], ...]:
    if topic0 is None:  # a log without topics only matches topic0 wildcards
        return ((address, _ANY), (_ANY, _ANY))
    return ((address, topic0), (address, _ANY), (_ANY, topic0), (_ANY, _ANY))
