"""COPY text for the window's staging table: candidate matches with their logs.

Logs keep the provider's hex until here, so a row is written straight from those
strings (bytea as `\\x...`) instead of being converted to bytes and encoded again
by the driver: the cheapest way from an eth_getLogs answer into PostgreSQL. A
field that is not hex makes PostgreSQL refuse the COPY; the caller reports that
as the provider's fault.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from indexer.chain.errors import ProviderFault
from indexer.chain.logs import Log

COLUMNS = (
    "subscription_id", "backfill_request_id", "block_number", "block_hash", "log_index",
    "transaction_hash", "transaction_index", "address", "topics", "data",
)  # fmt: skip

_NULL = "\\N"
_BYTEA = "\\\\x"  # `\x` (bytea hex input) with the backslash escaped for COPY text
_ARRAY_BYTEA = "\\\\\\\\x"  # the same inside an array literal: escaped twice

# What a staged payload may hold. The byte fields come from the provider unchecked:
# the grammar below (hashes 32 bytes, addresses 20, topics 32, data any hex) with
# the exact count of newlines and commas keeps a tab, newline, backslash or comma
# in one of them from shaping rows or array items of its own. PostgreSQL itself
# refuses an odd number of digits.
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_BYTES32 = r"\\\\x[0-9a-fA-F]{64}"
_TOPIC = r"\\\\\\\\x[0-9a-fA-F]{64}"
_LINE = (
    rf"{_UUID}\t(?:{_UUID}|\\N)\t[0-9]+\t{_BYTES32}\t[0-9]+\t{_BYTES32}\t[0-9]+\t"
    rf"\\\\x[0-9a-fA-F]{{40}}\t\{{(?:{_TOPIC}(?:,{_TOPIC}){{0,3}})?\}}\t\\\\x[0-9a-fA-F]*\n"
)
_PAYLOAD = re.compile(rf"(?:{_LINE})*")


def stage_line(subscription: str, request: str | None, entry: Log) -> str:
    topics = ",".join([_ARRAY_BYTEA + topic[2:] for topic in entry.topics])
    return (
        f"{subscription}\t{request or _NULL}\t{entry.block_number}\t"
        f"{_BYTEA}{entry.block_hash[2:]}\t{entry.log_index}\t"
        f"{_BYTEA}{entry.transaction_hash[2:]}\t{entry.transaction_index}\t"
        f"{_BYTEA}{entry.address[2:]}\t{{{topics}}}\t{_BYTEA}{entry.data[2:]}\n"
    )


def stage_payload(rows: Iterable[tuple[uuid.UUID, uuid.UUID | None, Log]]) -> bytes:
    """One COPY (format text) of (subscription, owning request, log) rows; ProviderFault
    if a log's byte field holds anything but hex digits."""
    names: dict[uuid.UUID, str] = {}
    lines = []
    logs = []
    for subscription_id, request_id, entry in rows:
        logs.append(entry)
        subscription = names.get(subscription_id) or names.setdefault(
            subscription_id, str(subscription_id)
        )
        request = None
        if request_id is not None:
            request = names.get(request_id) or names.setdefault(request_id, str(request_id))
        lines.append(stage_line(subscription, request, entry))
    text = "".join(lines)
    commas = sum(len(entry.topics) - 1 for entry in logs if entry.topics)
    if (
        text.count("\n") != len(lines)
        or text.count(",") != commas
        or _PAYLOAD.fullmatch(text) is None
    ):
        bad = next(e for e, line in zip(logs, lines, strict=True) if not _sound(line, e))
        raise ProviderFault(f"eth_getLogs returned a log with a field that is not hex: {bad!r}")
    return text.encode()


def _sound(line: str, entry: Log) -> bool:
    return (
        line.count("\n") == 1
        and line.count(",") == max(0, len(entry.topics) - 1)
        and _PAYLOAD.fullmatch(line) is not None
    )
