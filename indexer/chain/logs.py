"""Logs as eth_getLogs returns them, and as logfill keeps them until a commit.

Logs stay as the provider's lowercase hex strings from decoding to matching:
a scan fetches far more logs than it stores, and converting every field to
bytes made parsing the slowest step of a scan. `Log.row_values` converts the
logs that matched, at commit time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from indexer.chain.errors import ProviderFault

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


class StoredRow(Protocol):
    """A database row (an asyncpg Record, or a dict) read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


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

    @classmethod
    def from_stored(cls, row: StoredRow) -> Log:
        """A log as the `logs` table stores it (bytes fields) back in this shape."""
        return cls(
            row["block_number"],
            "0x" + row["block_hash"].hex(),
            row["log_index"],
            "0x" + row["transaction_hash"].hex(),
            row["transaction_index"],
            "0x" + row["address"].hex(),
            tuple("0x" + topic.hex() for topic in row["topics"]),
            "0x" + row["data"].hex(),
        )

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
