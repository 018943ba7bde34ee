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


@dataclass(frozen=True, slots=True)
class Log:
    block_number: int
    block_hash: bytes
    log_index: int
    transaction_hash: bytes
    transaction_index: int
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


def _hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)


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
        block_number=block_number,
        block_hash=_hex_bytes(block_hash),
        log_index=int(raw["logIndex"], 16),
        transaction_hash=_hex_bytes(raw["transactionHash"]),
        transaction_index=int(raw["transactionIndex"], 16),
        address=_hex_bytes(raw["address"]),
        topics=tuple(_hex_bytes(topic) for topic in raw["topics"]),
        data=_hex_bytes(raw["data"]),
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


@dataclass
class Matcher(Generic[K]):
    """Matches logs to many keyed filters, looking filters up by address first."""

    filters: Mapping[K, LogFilter]
    _by_address: dict[bytes, list[tuple[K, LogFilter]]] = field(init=False)
    _any_address: list[tuple[K, LogFilter]] = field(init=False)

    def __post_init__(self) -> None:
        self._by_address = {}
        self._any_address = []
        for key, log_filter in self.filters.items():
            if not log_filter.addresses:
                self._any_address.append((key, log_filter))
            for address in log_filter.addresses:
                self._by_address.setdefault(address, []).append((key, log_filter))

    def match(self, log: Log) -> list[K]:
        candidates = self._by_address.get(log.address, [])
        return [
            key for key, log_filter in (*candidates, *self._any_address) if log_filter.matches(log)
        ]
