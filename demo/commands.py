"""The command lines the demo prints, quoted for a POSIX shell so that they work as pasted.

Each line carries the settings it needs in front of it (`LOGFILL_DATABASE_URL=...
logfill admin ...`), never leaning on what the reader's shell or `.env` holds: an
admin command without the demo's database URL would go to the default embedded
PostgreSQL, a different database, and answer "no workspace".
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Running:
    """What of the demo is up, as the printed commands address it."""

    api_url: str
    api_key: str
    database_url: str
    workspace_id: str
    subscription_id: str
    backfill_id: str


def logfill_program(cwd: Path | None = None) -> str:
    """This installation's `logfill`, as the current folder reaches it.

    `.venv/bin/logfill` from the repository (as `make demo` runs), the absolute
    path elsewhere, and plain `logfill` (then it must be on PATH) only when no
    script sits beside this Python.
    """
    script = Path(sys.executable).parent / "logfill"
    if not script.is_file():
        return "logfill"
    try:
        relative = script.relative_to(cwd or Path.cwd())
    except ValueError:
        return str(script)
    return str(relative) if len(relative.parts) > 1 else f"./{relative}"


def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """`NAME=value ... program args`, every word quoted where the shell needs it."""
    settings = [f"{name}={shlex.quote(value)}" for name, value in (env or {}).items()]
    return " ".join([*settings, *map(shlex.quote, argv)])


def try_commands(running: Running, logfill: str) -> list[str]:
    """The customer's CLI, the operator's admin command and curl, against this demo."""
    client = {"LOGFILL_API_URL": running.api_url, "LOGFILL_API_KEY": running.api_key}
    admin = {"LOGFILL_DATABASE_URL": running.database_url}
    bearer = ["-H", f"Authorization: Bearer {running.api_key}"]
    backfill = f"{running.api_url}/v1/backfill/{running.backfill_id}"
    events = f"{running.api_url}/v1/subscriptions/{running.subscription_id}/events?limit=3"
    top_up = ["admin", "credits", "add", "--workspace", running.workspace_id, "--amount", "100"]
    history = ["backfill", "list", "--subscription", running.subscription_id]
    return [
        shell_line([logfill, "backfill", "status", running.backfill_id], client),
        shell_line([logfill, *history], client),
        shell_line([logfill, *top_up], admin),
        shell_line(["curl", "-s", backfill, *bearer]),
        shell_line(["curl", "-s", events, *bearer]),
    ]
