"""Logs, log filters, and matching logs back to many subscriptions in memory.

Logs stay as the provider's lowercase hex strings from decoding to matching:
a scan fetches far more logs than it stores, and converting every field to
bytes made parsing the slowest step of a scan. `Log.row_values` converts the
logs that matched, at commit time.

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

import msgspec

from indexer.rpc_errors import ProviderFault

K = TypeVar("K", bound=Hashable)
TopicSet = frozenset[str] | None
HexLike = str | bytes


class WireLog(msgspec.Struct, rename="camel", gc=False):
    """One eth_getLogs result exactly as sent; decoded straight from JSON by msgspec."""

    address: str
    topics: list[str]
    data: str
    block_number: str | None = None
    block_hash: str | None = None
    log_index: str | None = None
    transaction_hash: str | None = None
    transaction_index: str | None = None
    removed: bool = False


class Log(msgspec.Struct, frozen=True, gc=False):
    """One log mapped to plain types: ints, and lowercase 0x-hex strings for byte fields."""

    block_number: int
    block_hash: str
    log_index: int
    transaction_hash: str
    transaction_index: int
    address: str
    topics: tuple[str, ...]
    data: str

    def row_values(self) -> tuple[int, bytes, int, bytes, int, bytes, list[bytes], bytes]:
        """The log as bytes, for storage; ProviderFault if a field is not hex."""
        try:
            return (
                self.block_number,
                bytes.fromhex(self.block_hash[2:]),
                self.log_index,
                bytes.fromhex(self.transaction_hash[2:]),
                self.transaction_index,
                bytes.fromhex(self.address[2:]),
                [bytes.fromhex(topic[2:]) for topic in self.topics],
                bytes.fromhex(self.data[2:]),
            )
        except ValueError as exc:
            raise ProviderFault(
                f"log {self.block_hash}/{self.log_index} is not hex: {exc}"
            ) from exc


def to_hex(value: HexLike) -> str:
    """Canonical form of an address or topic: lowercase, 0x-prefixed."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    value = value.lower()
    return value if value.startswith("0x") else "0x" + value


def _fault(wire: WireLog, from_block: int, to_block: int, what: str) -> ProviderFault:
    raw = msgspec.to_builtins(wire)
    return ProviderFault(f"eth_getLogs for blocks {from_block}-{to_block} returned {what}: {raw!r}")


def parse_logs(wires: Iterable[WireLog], *, from_block: int, to_block: int) -> list[Log]:
    """Map decoded logs; refuse what a correct provider cannot send (never stored).

    On the hot path of every scan: one pass, no per-field helpers. Address and
    topics are lowercased (matching compares them as strings); the other hex
    fields are only ever converted to bytes, which ignores case.
    """
    logs: list[Log] = []
    append, lower = logs.append, str.lower
    for wire in wires:
        block_hash, number, index = wire.block_hash, wire.block_number, wire.log_index
        tx_hash, tx_index, topics = wire.transaction_hash, wire.transaction_index, wire.topics
        if not block_hash or wire.removed or number is None or index is None or not tx_hash:
            raise _fault(wire, from_block, to_block, "a pending or removed log")
        try:
            block_number = int(number, 16)
            entry = Log(
                block_number,
                block_hash,
                int(index, 16),
                tx_hash,
                int(tx_index, 16) if tx_index is not None else 0,
                wire.address.lower(),
                tuple(map(lower, topics)),
                wire.data,
            )
        except ValueError as exc:
            raise _fault(wire, from_block, to_block, f"a malformed log ({exc})") from exc
        if not from_block <= block_number <= to_block:
            raise _fault(wire, from_block, to_block, f"a log of block {block_number}")
        if len(block_hash) != 66 or len(entry.address) != 42 or len(topics) > 4:
            raise _fault(wire, from_block, to_block, "a malformed log")
        append(entry)
    return logs


def parse_log(raw: Mapping[str, Any], *, from_block: int, to_block: int) -> Log:
    """One log from a JSON object (tests and tools; the client decodes with msgspec)."""
    try:
        wire = msgspec.convert(raw, WireLog)
    except msgspec.ValidationError as exc:
        raise ProviderFault(f"eth_getLogs returned a malformed log: {exc}") from exc
    return parse_logs([wire], from_block=from_block, to_block=to_block)[0]


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
