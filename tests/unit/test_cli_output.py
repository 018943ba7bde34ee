"""What `logfill backfill status|list|watch` say about a request held back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.cli.backfill import _describe_backfill, trouble
from api.cli.progress import progress_detail

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def a_request(**fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "id": "b1", "subscription_id": "s1", "chain_id": 1, "status": "queued",
        "from_block": 100, "to_block": 200, "order": "asc", "cursor": 100, "progress": 0.0,
        "blocks_scanned": 0, "blocks_total": 101, "matches": 0, "new_matches": 0,
        "duplicate_matches": 0, "credits_charged": 0, "cu_spent": 0, "windows": 0,
        "labels": {}, "created_at": "2026-12-02T11:59:00+00:00", "finished_at": None,
        "estimated_start_at": "2026-12-02T12:00:10+00:00",
        "estimated_finish_at": "2026-12-02T12:00:20+00:00",
        "error": None, "last_transient_error": None, "last_transient_error_at": None,
        "blocked_reason": None,
    }  # fmt: skip
    request.update(fields)
    return request


def test_a_queued_request_says_when_it_starts() -> None:
    request = a_request()
    assert "starts in 10s" in progress_detail(request, NOW)
    assert "window start 2026-12-02T12:00:10+00:00" in _describe_backfill(request)


def test_provider_trouble_and_blocks_are_shown_with_their_reason() -> None:
    waiting = a_request(
        last_transient_error="eth_getLogs: HTTP 503",
        last_transient_error_at="2026-12-02T11:59:30+00:00",
    )
    assert "provider: eth_getLogs: HTTP 503" in progress_detail(waiting, NOW)
    assert trouble(waiting) == [
        ("provider", "eth_getLogs: HTTP 503 (at 2026-12-02T11:59:30+00:00; retried each window)")
    ]
    blocked = a_request(status="blocked", blocked_reason="the workspace's plan (free) ...")
    assert "blocked: the workspace's plan (free)" in progress_detail(blocked, NOW)
    assert "  blocked      the workspace's plan (free) ..." in _describe_backfill(blocked)


def test_matches_a_reorg_removed_are_said_only_when_there_are_some() -> None:
    assert "removed" not in _describe_backfill(a_request(matches=5, new_matches=5))
    reorged = a_request(matches=9, new_matches=9, matches_removed=3)
    assert "  matches      9 (new 9, duplicates 0, 3 removed by reorgs and refunded)" in (
        _describe_backfill(reorged)
    )
