"""What a provider's failure means: retry, split the range, or give up.

Every provider words its limits differently. All of the classification lives
here, in pure functions over (HTTP status, JSON-RPC code, message), so that it
can be tested against the real texts in one table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexer.errors import LogfillError


class RpcError(LogfillError):
    """A JSON-RPC call failed."""

    retryable = False

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class RetryableRpcError(RpcError):
    """Transient: 429, 5xx, timeouts, dropped connections, truncated JSON..."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class FatalRpcError(RpcError):
    """Retrying cannot help (bad key, unknown method, invalid params)."""


class ProviderFault(RetryableRpcError):
    """The provider answered, but with data that cannot be right (never stored)."""


class NodeBehind(RetryableRpcError):
    """The node that answered had not seen the blocks asked for: its answer (an empty
    eth_getLogs, as such nodes give) is not stored; another attempt may reach another
    node, else the next window asks again."""


@dataclass(frozen=True)
class RangeHint:
    """What a range/result-size error tells us about the next attempt."""

    suggested: tuple[int, int] | None = None  # a range the provider says will work
    max_span: int | None = None  # a hard cap on blocks per call


class RangeTooLarge(RpcError):
    """The block range (or its result) is too large for one call: split it."""

    def __init__(self, message: str, hint: RangeHint, *, code: int | None = None):
        super().__init__(message, code=code)
        self.hint = hint


class SingleBlockTooLarge(FatalRpcError):
    """Even one block is too large for the provider: nothing to split any more."""


_NUMBER = r"(0x[0-9a-fA-F]+|\d[\d,_]*)"
_SUGGESTED_RANGE = [
    # Infura / MetaMask: "Try with this block range [0x1, 0x5]."
    # Alchemy: "this block range should work: [0x1, 0x5]"
    re.compile(rf"\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\]"),
    # Ankr, Chainstack: "exceeds max results 20000, retry with the range 100-199"
    re.compile(rf"range\s+{_NUMBER}\s*-\s*{_NUMBER}"),
]
_MAX_SPAN = [
    # Alchemy: "up to a 2K block range", "up to a 10 block range"
    re.compile(r"up to a ([\d,_]+)\s*([kKmM]?) block range"),
    # QuickNode: "eth_getLogs is limited to a 10,000 range"
    re.compile(r"limited to an? ([\d,_]+)\s*([kKmM]?)(?: blocks?)? range"),
    # Infura: "range 1000000 exceeds limit of 10000"
    re.compile(r"exceeds limit of ([\d,_]+)\s*([kKmM]?)"),
    # Generic: "block range too large, max is 1000", "max block range 5000"
    re.compile(
        r"max(?:imum)?(?: block range)?(?: is|:|=)?\s+([\d,_]+)\s*([kKmM]?)\s*(?:blocks?)?\b"
    ),
]
_RANGE_PROBLEM = re.compile(
    r"block range|range too (?:large|wide)|too (?:large|wide) (?:block )?range"
    r"|more than \d[\d,]* results|response size (?:exceeded|is larger)"
    r"|exceeds? max(?:imum)? results|query returned more than|too many (?:results|logs)"
    r"|limited to an? [\d,]+|reduc(?:e|ing) (?:the|your) (?:block )?range"
    r"|range \d+ exceeds limit",
    re.IGNORECASE,
)
_TRANSIENT_TEXT = re.compile(
    r"header not found|rate limit|too many requests|capacity|timeout|timed out"
    r"|temporarily unavailable|try again|internal error|busy",
    re.IGNORECASE,
)
FATAL_CODES = {-32700: "parse error", -32600: "invalid request", -32601: "method not found"}
_MULTIPLIER = {"": 1, "k": 1_000, "m": 1_000_000}


def _to_int(text: str) -> int:
    text = text.replace(",", "").replace("_", "")
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def parse_range_hint(message: str) -> RangeHint | None:
    """None when the message is not about the range or result size."""
    if not _RANGE_PROBLEM.search(message):
        return None
    return RangeHint(suggested=_suggested_range(message), max_span=_max_span(message))


def _suggested_range(message: str) -> tuple[int, int] | None:
    for pattern in _SUGGESTED_RANGE:
        found = pattern.search(message)
        if found:
            low, high = _to_int(found.group(1)), _to_int(found.group(2))
            if low <= high:
                return low, high
    return None


def _max_span(message: str) -> int | None:
    for pattern in _MAX_SPAN:
        found = pattern.search(message)
        if found:
            span = _to_int(found.group(1)) * _MULTIPLIER[found.group(2).lower()]
            if span > 0:
                return span
    return None


def classify_rpc_error(code: int | None, message: str, *, method: str) -> RpcError:
    """Turn a JSON-RPC error object into the exception that says what to do next."""
    hint = parse_range_hint(message) if method == "eth_getLogs" else None
    if hint is not None:
        return RangeTooLarge(message, hint, code=code)
    if code in FATAL_CODES:
        return FatalRpcError(f"{method}: {FATAL_CODES[code]} ({code}): {message}", code=code)
    if code == -32602:
        return FatalRpcError(f"{method}: invalid params (-32602): {message}", code=code)
    if code == -32005 or _TRANSIENT_TEXT.search(message):
        return RetryableRpcError(f"{method}: {message}", code=code)
    # Unknown errors are treated as transient: bounded retries, then the window
    # moves on and the request waits; it is never failed on a guess.
    return RetryableRpcError(f"{method}: error {code}: {message}", code=code)


def classify_http_status(status: int, *, method: str, retry_after: float | None) -> RpcError:
    """An HTTP answer without a usable JSON-RPC body."""
    if status in (401, 403):
        return FatalRpcError(
            f"{method}: the provider refused the request (HTTP {status}); check the RPC URL's key",
            status=status,
        )
    if status == 429 or status >= 500:
        return RetryableRpcError(f"{method}: HTTP {status}", status=status, retry_after=retry_after)
    return FatalRpcError(f"{method}: unexpected HTTP {status}", status=status)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (HTTP dates are rare from RPC providers; ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
