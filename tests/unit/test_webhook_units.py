"""Pure parts of webhook delivery, table-tested: signing, body splitting, retry decisions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from indexer.outbox.bodies import delivery_body
from indexer.outbox.split import split_events
from indexer.settings import Settings
from indexer.webhooks.retry import (
    Attempt,
    Decision,
    Failure,
    RetryPolicy,
    decide,
    parse_retry_after,
)
from indexer.webhooks.sender import answered, excerpt
from indexer.webhooks.signing import sign, signature_header, webhook_headers

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_dGVzdHNlY3JldA=="
NOW = datetime(2025, 1, 1, tzinfo=UTC)

# ----------------------------------------------------------------------------- signing


def test_signature_is_hmac_sha256_over_id_timestamp_body() -> None:
    body = b'{"type":"backfill.matches"}'
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert sign(SECRET, "msg_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()


def test_signature_matches_the_standardwebhooks_reference() -> None:
    body = '{"a":1}'
    when = datetime.fromtimestamp(1700000000, UTC)
    reference = Webhook(SECRET).sign("msg_2", when, body)
    assert sign(SECRET, "msg_2", 1700000000, body.encode()) == reference


def test_rotation_signs_with_both_secrets_and_either_verifies() -> None:
    body = b'{"events":[]}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = webhook_headers([SECRET, OLD_SECRET], "msg_3", timestamp, body)
    first, second = headers["webhook-signature"].split(" ")
    assert first == sign(SECRET, "msg_3", timestamp, body)
    assert second == sign(OLD_SECRET, "msg_3", timestamp, body)
    for secret in (SECRET, OLD_SECRET):
        Webhook(secret).verify(body, headers)  # raises if no signature matches
    assert headers["webhook-id"] == "msg_3"
    assert headers["webhook-timestamp"] == str(timestamp)


def test_one_secret_one_signature() -> None:
    assert " " not in signature_header([SECRET], "m", 1, b"x")


# ----------------------------------------------------------------------------- splitting


def event(i: int, data_bytes: int = 0) -> dict[str, Any]:
    return {"id": f"evt_{i}", "block_number": i, "data": "0x" + "ab" * data_bytes}


ENVELOPE = {
    "type": "backfill.matches",
    "subscription_id": "6f1c1c4e-5a5a-4b4b-8c8c-000000000001",
    "backfill_id": None,
    "chain_id": 1,
}


def body_size(batch: list[Any]) -> int:
    return len(delivery_body({**ENVELOPE, "events": batch}))


@pytest.mark.parametrize(
    ("sizes", "max_events", "max_body", "expected"),
    [
        ([0] * 5, 2, 10_000, [2, 2, 1]),  # the count limit
        ([0] * 3, 100, 10_000, [3]),  # everything fits
        ([1000] * 5, 100, 5_000, [2, 2, 1]),  # the byte limit
        ([10, 5000, 10], 100, 2_000, [1, 1, 1]),  # an oversized event goes alone
        ([5000], 100, 2_000, [1]),  # ... even as the only one
        ([], 100, 2_000, []),  # nothing in, nothing out (never an empty batch)
    ],
)
def test_split_events(
    sizes: list[int], max_events: int, max_body: int, expected: list[int]
) -> None:
    events = [event(i, size) for i, size in enumerate(sizes)]
    batches = split_events(events, max_events, max_body, ENVELOPE)
    assert [len(b) for b in batches] == expected
    assert [e for b in batches for e in b] == events  # order kept, nothing lost
    for batch in batches:
        assert batch and (len(batch) == 1 or body_size(batch) <= max_body)


def test_split_is_tight_at_the_limit() -> None:
    events = [event(i, 100) for i in range(10)]
    limit = body_size(events[:4])
    batches = split_events(events, 100, limit, ENVELOPE)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert body_size(batches[0]) == limit


def test_split_without_envelope_assumes_the_largest() -> None:
    events = [event(i, 200) for i in range(50)]
    for batch in split_events(events, 100, 3000):
        envelope = {**ENVELOPE, "backfill_id": ENVELOPE["subscription_id"], "chain_id": 2**63 - 1}
        assert len(orjson.dumps({**envelope, "events": batch})) <= 3000


# ----------------------------------------------------------------------------- retries

POLICY = RetryPolicy(schedule=(0, 5, 300, 1800), jitter=0, max_retry_after=3600)


def fail(status: int | None = None, failure: Failure | None = None, **kw: Any) -> Attempt:
    return Attempt(status_code=status, failure=failure, error="boom", **kw)


@pytest.mark.parametrize(
    ("attempt", "number", "expected"),
    [
        (Attempt(status_code=200), 1, Decision("delivered")),
        (Attempt(status_code=204), 4, Decision("delivered")),
        (fail(500), 1, Decision("pending", 5, "boom")),
        (fail(500), 2, Decision("pending", 300, "boom")),
        (fail(500), 3, Decision("pending", 1800, "boom")),
        (fail(500), 4, Decision("dead", error="boom (gave up after 4 attempts)")),
        (fail(400), 1, Decision("pending", 5, "boom")),  # any non-2xx is retried
        (fail(404), 1, Decision("pending", 5, "boom")),
        (fail(302), 1, Decision("pending", 5, "boom")),  # redirects: not followed, retried
        (fail(301), 2, Decision("pending", 300, "boom")),
        (fail(410), 1, Decision("dead", error="boom", disable_reason="receiver answered 410 Gone")),
        (fail(failure=Failure.TIMEOUT), 1, Decision("pending", 5, "boom")),
        (fail(failure=Failure.NETWORK), 3, Decision("pending", 1800, "boom")),
        (
            fail(failure=Failure.NETWORK),
            4,
            Decision("dead", error="boom (gave up after 4 attempts)"),
        ),
        (fail(failure=Failure.REFUSED), 1, Decision("dead", error="boom")),  # SSRF: at once
        (fail(failure=Failure.NO_WEBHOOK), 1, Decision("dead", error="boom")),
        # Retry-After on 429/503 stretches the delay, never shortens it, and is capped.
        (fail(429, retry_after="120"), 1, Decision("pending", 120, "boom")),
        (fail(503, retry_after="120"), 1, Decision("pending", 120, "boom")),
        (fail(429, retry_after="1"), 2, Decision("pending", 300, "boom")),
        (fail(429, retry_after="999999"), 1, Decision("pending", 3600, "boom")),
        (fail(429, retry_after="soon"), 1, Decision("pending", 5, "boom")),
        (fail(500, retry_after="120"), 1, Decision("pending", 5, "boom")),  # only 429/503
        (
            fail(429, retry_after="Wed, 01 Jan 2025 00:10:00 GMT"),
            1,
            Decision("pending", 600, "boom"),
        ),
        (
            fail(429, retry_after="120"),
            4,
            Decision("dead", error="boom (gave up after 4 attempts)"),
        ),
    ],
)
def test_decide(attempt: Attempt, number: int, expected: Decision) -> None:
    assert decide(attempt, number, POLICY, NOW, random.Random(0)) == expected


def test_jitter_spreads_within_bounds() -> None:
    policy = RetryPolicy(schedule=(0, 100), jitter=0.2)
    rng = random.Random(42)
    delays = [decide(fail(500), 1, policy, NOW, rng).retry_in for _ in range(200)]
    assert all(d is not None and 80 <= d <= 120 for d in delays)
    assert len(set(delays)) > 100  # actually random, not a constant


def spelled(seconds: float) -> str:
    """A delay as the README writes it: 5 s, 30 min, 10 h."""
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def test_the_default_schedule_is_the_one_readme_and_env_example_publish() -> None:
    # Svix's schedule with short early retries (1 s, 30 s): a receiver's one-off
    # failure costs seconds; a receiver down for good still gets the long tail.
    schedule = Settings().webhook_retry_schedule
    assert schedule == (0, 1, 5, 30, 300, 1800, 7200, 18000, 36000, 36000)
    env = (REPO_ROOT / ".env.example").read_text().splitlines()
    assert f"LOGFILL_WEBHOOK_RETRY_SCHEDULE={','.join(f'{d:g}' for d in schedule)}" in env
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    delays = [spelled(d) for d in schedule[1:]]
    assert f"at once, then after {', '.join(delays[:-1])} and {delays[-1]}" in readme
    assert "ten attempts" in readme and len(schedule) == 10
    # When a delivery to a receiver that is down for good is dead, as the README says.
    assert f"about {sum(schedule) / 3600:.1f} hours (±20%) after the first" in readme


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("Wed, 01 Jan 2025 00:01:00 GMT", 60.0),
        ("Tue, 31 Dec 2024 23:00:00 GMT", 0.0),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("tomorrow", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_schedule_setting_parses_comma_lists() -> None:
    assert Settings.model_validate(
        {"webhook_retry_schedule": "0, 0.2,0.4"}
    ).webhook_retry_schedule == (0, 0.2, 0.4)
    with pytest.raises(ValueError, match="starting with 0"):
        Settings.model_validate({"webhook_retry_schedule": "5,10"})
    with pytest.raises(ValueError, match="longer than"):
        Settings(webhook_timeout_seconds=15, webhook_lease_seconds=10)


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("status", "headers", "answer", "error"),
    [
        (200, {}, b"ok", None),
        (500, {}, b"  internal\n  error ", "HTTP 500: internal error"),
        (502, {}, b"", "HTTP 502"),
        (302, {"location": "http://169.254.169.254/"}, b"", None),
        (429, {"retry-after": "7"}, b"slow down", "HTTP 429: slow down"),
    ],
)
def test_answered(status: int, headers: dict[str, str], answer: bytes, error: str | None) -> None:
    attempt = answered(status, headers, answer)
    assert attempt.status_code == status
    if status == 302:
        assert attempt.error == "HTTP 302: redirect to http://169.254.169.254/ not followed"
    else:
        assert attempt.error == error
    assert attempt.retry_after == headers.get("retry-after")


def test_excerpt_is_short_and_one_line() -> None:
    text = excerpt(("x" * 1000 + "\n").encode() + b"\xff")
    assert len(text) == 203 and text.endswith("...") and "\n" not in text


def test_retry_in_is_relative_to_the_database_clock() -> None:
    # The decision carries a delay, not a timestamp: workers' clocks may drift from
    # the database's, and the outcome query adds the delay to now() there.
    decision = decide(fail(500), 1, POLICY, NOW + timedelta(days=3), random.Random(0))
    assert decision.retry_in == 5
