"""Opaque keyset cursors for list endpoints: the sort key of the last item shown.

A cursor is base64url JSON `[kind, ...key]`; the kind stops a cursor of one list
from being replayed against another. Clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from indexer.refusals import InvalidFields

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(kind: str, *key: str | int) -> str:
    raw = orjson.dumps([kind, *key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, kind: str, types: tuple[type, ...]) -> list[Any]:
    """The key inside `token`; 422 (parameter `after`) for anything we did not issue."""
    try:
        padded = token + "=" * (-len(token) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != len(types) + 1
        or value[0] != kind
        or not all(type(v) is t for v, t in zip(value[1:], types, strict=True))
    ):
        raise InvalidFields.one("after", "not a cursor of this list", parameter=True)
    return value[1:]
