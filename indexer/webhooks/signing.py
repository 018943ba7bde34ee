"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The receiver recomputes HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}"
with the secret it was given and compares. During a secret rotation the header
carries one signature per valid secret, separated by spaces, so a receiver that
still has the old secret (or already has the new one) accepts the delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 part of a `whsec_...` secret, decoded."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: a signature per secret, space-separated."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: Iterable[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt.

    `webhook-id` is the outbox row's id, the same on every attempt, so that the
    receiver can drop a delivery it already processed. The timestamp is the
    attempt's, so that a retry hours later still passes the receiver's
    replay-window check.
    """
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, message_id, timestamp, body),
    }
