"""What templates format with: numbers, times, statuses, static URLs.

One place decides how a status looks (its colour class and its words), so a
`paused_credits` badge means the same on every page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import jinja2

# Colour families: a status's badge and progress bar use the same one everywhere.
DASH = "\u2013"  # what an unknown value shows
STATUS_TONES = {
    "queued": "neutral",
    "processing": "info",
    "following": "info",
    "completed": "good",
    "completed_noop": "good",
    "paused": "warn",
    "paused_credits": "warn",
    "blocked": "bad",
    "failed": "bad",
    "cancelled": "muted",
    "pending": "info",
    "delivered": "good",
    "dead": "bad",
}
STATUS_WORDS = {
    "completed_noop": "completed (nothing new)",
    "paused_credits": "paused: no credits",
    "following": "following the chain",
}


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


def number(value: Any) -> str:
    """1234567 -> 1,234,567; None -> an en dash."""
    if value is None:
        return DASH
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def percent(value: Any) -> str:
    return DASH if value is None else f"{float(value):.0%}"


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """ "3 min ago", "in 12 s", "just now"; an en dash for None."""
    if value is None:
        return DASH
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if ahead else f"{amount} ago"
    return "just now"  # pragma: no cover - seconds >= 5 always matches "s"


def exact(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def tone(status: str) -> str:
    return STATUS_TONES.get(status, "neutral")


def status_words(status: str) -> str:
    return STATUS_WORDS.get(status, status)


def install(env: jinja2.Environment, static: Mapping[str, _Versioned]) -> None:
    env.filters.update(
        number=number,
        percent=percent,
        relative=relative,
        exact=exact,
        tone=tone,
        status_words=status_words,
    )

    def static_url(name: str) -> str:
        return f"/dashboard/static/{name}?v={static[name].version}"

    env.globals["static_url"] = static_url
