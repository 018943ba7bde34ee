"""External tools some tests drive (promtool, ...): found on PATH, or the test skips,
except under .ci/run (`LOGFILL_REQUIRE_TOOLS=1`), where a missing tool fails the run."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; a skip (a failure under .ci/run) when it is not installed."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed ({install_hint})"
    if os.environ.get("LOGFILL_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}; .ci/run requires it", pytrace=False)
    pytest.skip(reason)
