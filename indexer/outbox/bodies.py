"""Webhook bodies: each match as an event (a stable id, the log, decoded arguments),
and the bytes a delivery POSTs and signs.

The outbox stores a delivery's body as jsonb (`webhook_deliveries.payload`); the
sender serializes it compactly with orjson (`delivery_body`) and signs exactly
those bytes.

A subscription created from event signatures keeps their ABI entries
(`event_abis`); a match of one of those events carries its arguments decoded
with eth_abi. Values are made JSON-safe: integers as decimal strings (uint256
does not fit a JSON number), bytes as 0x hex, addresses checksummed, and NUL
characters in strings replaced by U+FFFD (PostgreSQL's jsonb, where the outbox
keeps bodies, cannot hold \\u0000).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address

from indexer.chain.logs import Log

_DYNAMIC = ("string", "bytes", "tuple")


def event_id(chain_id: int, block_hash: str, log_index: int) -> str:
    """The id a receiver can deduplicate on: the same for the same log, always."""
    key = f"{chain_id}:{block_hash.lower()}:{log_index}".encode()
    return "evt_" + hashlib.sha256(key).hexdigest()[:32]


def _is_hashed_when_indexed(abi_type: str) -> bool:
    return abi_type.startswith(_DYNAMIC) or abi_type.endswith("]")


def _json_safe(abi_type: str, value: Any) -> Any:
    if abi_type.endswith("]"):
        return [_json_safe(abi_type[: abi_type.rindex("[")], item) for item in value]
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith(("uint", "int")):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return [_json_safe("", item) for item in value]
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    return value


class EventDecoder:
    """Decodes the logs of a subscription's events; None for a log of another event."""

    def __init__(self, abis: Sequence[Mapping[str, Any]]) -> None:
        self._by_topic0 = {
            "0x" + event_abi_to_log_topic(dict(abi)).hex(): abi  # type: ignore[arg-type]
            for abi in abis
            if abi.get("type", "event") == "event" and not abi.get("anonymous")
        }

    def __bool__(self) -> bool:
        return bool(self._by_topic0)

    def decode(self, log: Log) -> dict[str, Any] | None:
        abi = self._by_topic0.get(log.topics[0]) if log.topics else None
        if abi is None:
            return None
        inputs = abi.get("inputs", [])
        indexed = [i for i in inputs if i.get("indexed")]
        plain = [i for i in inputs if not i.get("indexed")]
        if len(indexed) != len(log.topics) - 1:
            return None  # same topic0, another shape (e.g. ERC-20 vs ERC-721 Transfer)
        try:
            values = abi_decode([i["type"] for i in plain], bytes.fromhex(log.data[2:]))
            args: dict[str, Any] = {}
            topics = iter(log.topics[1:])
            decoded = iter(values)
            for position, item in enumerate(inputs):
                name = item.get("name") or f"arg{position}"
                if item.get("indexed"):
                    topic = next(topics)
                    if _is_hashed_when_indexed(item["type"]):
                        args[name] = topic  # only the keccak of the value is on chain
                    else:
                        (value,) = abi_decode([item["type"]], bytes.fromhex(topic[2:]))
                        args[name] = _json_safe(item["type"], value)
                else:
                    args[name] = _json_safe(item["type"], next(decoded))
        except (DecodingError, ValueError, OverflowError):
            return None
        return {"event": abi["name"], "args": args}


def event_body(chain_id: int, log: Log, decoder: EventDecoder | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id(chain_id, log.block_hash, log.log_index),
        "block_number": log.block_number,
        "block_hash": log.block_hash.lower(),
        "transaction_hash": log.transaction_hash.lower(),
        "transaction_index": log.transaction_index,
        "log_index": log.log_index,
        "address": to_checksum_address(log.address),
        "topics": list(log.topics),
        "data": log.data.lower(),
    }
    if decoder:
        decoded = decoder.decode(log)
        if decoded is not None:
            body["decoded"] = decoded
    return body


def delivery_body(payload: Mapping[str, Any]) -> bytes:
    """The bytes that are POSTed and signed."""
    return orjson.dumps(payload)
