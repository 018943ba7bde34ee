"""Human-readable event signatures ("Transfer(address indexed from, ...)") to ABI entries.

Customers write events the way Solidity and ethers print them; the window's
decoder (`indexer.outbox.bodies`) and topic0 need ABI entries. Types are checked and
normalised with eth_abi's own grammar (`uint` -> `uint256`) and topic0 comes
from eth_utils, so the hash is the one every other tool computes. Tuple
parameters are refused: the decoder decodes flat types only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import ABITypeError, ParseError
from eth_abi.grammar import BasicType, normalize, parse
from eth_utils.abi import event_abi_to_log_topic

MAX_INDEXED = 3
_BASES = frozenset({"address", "bool", "string", "bytes", "uint", "int", "fixed", "ufixed"})
_SIGNATURE = re.compile(
    r"^\s*(?:event\s+)?(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)\s*\((?P<params>[^()]*)\)"
    r"\s*(?P<anonymous>anonymous)?\s*;?\s*$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class ParsedEvent:
    abi: dict[str, Any]
    signature: str  # normalised human-readable form, stored and shown back
    topic0: str  # 0x-prefixed lowercase keccak of the canonical signature


def parse_event_signature(text: str) -> ParsedEvent:
    """Parse one signature; ValueError with a message fit for the client."""
    found = _SIGNATURE.match(text)
    if found is None:
        raise ValueError(
            "expected an event signature like "
            "'Transfer(address indexed from, address indexed to, uint256 value)'"
            " (tuple parameters are not supported)"
        )
    if found["anonymous"]:
        raise ValueError("anonymous events have no topic0 and cannot be subscribed to by name")
    params = found["params"].strip()
    inputs = [_parse_param(p, i) for i, p in enumerate(params.split(","))] if params else []
    _check_inputs(inputs)
    abi = {"type": "event", "name": found["name"], "anonymous": False, "inputs": inputs}
    topic0 = "0x" + event_abi_to_log_topic(abi).hex()  # type: ignore[arg-type]
    return ParsedEvent(abi, _human_signature(abi), topic0)


def _parse_param(text: str, position: int) -> dict[str, Any]:
    words = text.split()
    if not words:
        raise ValueError(f"parameter {position + 1} is empty")
    type_name, rest = words[0], words[1:]
    indexed = bool(rest) and rest[0] == "indexed"
    rest = rest[1:] if indexed else rest
    if len(rest) > 1 or (rest and not _IDENTIFIER.match(rest[0])):
        raise ValueError(
            f"parameter {position + 1} ({text.strip()!r}) is not 'type [indexed] [name]'"
        )
    return {"type": _normalise_type(type_name), "name": rest[0] if rest else "", "indexed": indexed}


def _normalise_type(type_name: str) -> str:
    try:
        normalised: str = normalize(type_name)  # type: ignore[no-untyped-call]
        parsed = parse(normalised)
        if not isinstance(parsed, BasicType) or parsed.base not in _BASES:
            raise ABITypeError(type_name)
        parsed.validate()  # type: ignore[no-untyped-call]
    except (ParseError, ABITypeError) as exc:
        raise ValueError(f"{type_name!r} is not a Solidity ABI type") from exc
    return normalised


def _check_inputs(inputs: list[dict[str, Any]]) -> None:
    if sum(1 for i in inputs if i["indexed"]) > MAX_INDEXED:
        raise ValueError(f"an event has at most {MAX_INDEXED} indexed parameters")
    names = [i["name"] for i in inputs if i["name"]]
    if len(names) != len(set(names)):
        raise ValueError("parameter names must be unique")


def _human_signature(abi: dict[str, Any]) -> str:
    params = []
    for item in abi["inputs"]:
        words = [item["type"], "indexed" if item["indexed"] else "", item["name"]]
        params.append(" ".join(w for w in words if w))
    return f"{abi['name']}({', '.join(params)})"
