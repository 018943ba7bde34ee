"""The bodies logfill POSTs are the ones /openapi.json documents, for both types."""

from __future__ import annotations

import uuid

import pytest

from api.app import all_operations
from api.models import WebhookBody
from api.openapi import build_openapi
from indexer.chain.logs import Log
from indexer.outbox.bodies import EventDecoder, event_id
from indexer.outbox.enqueue import MATCHES, MATCHES_REMOVED, Batch, OutboxLimits, delivery_rows

LOG = Log(
    block_number=7,
    block_hash="0x" + "ab" * 32,
    log_index=3,
    transaction_hash="0x" + "cd" * 32,
    transaction_index=1,
    address="0x" + "12" * 20,
    topics=("0x" + "ef" * 32,),
    data="0x",
)


@pytest.mark.parametrize("kind", [MATCHES, MATCHES_REMOVED])
def test_a_delivery_body_of_either_type_is_the_documented_shape(kind: str) -> None:
    batch = Batch(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), EventDecoder([]), [LOG])
    (row,) = delivery_rows(1, [batch], OutboxLimits(100, 256 * 1024), kind)
    body = WebhookBody.model_validate(row.payload)
    assert body.type == kind
    # A removal names the event by the id its delivery carried.
    assert [e.id for e in body.events] == [event_id(1, LOG.block_hash, LOG.log_index)]


def test_openapi_documents_both_webhooks() -> None:
    document = build_openapi(all_operations(), version="test")
    assert set(document["webhooks"]) == {MATCHES, MATCHES_REMOVED}
    schema = document["webhooks"][MATCHES_REMOVED]["post"]["requestBody"]["content"]
    assert schema["application/json"]["schema"] == {"$ref": "#/components/schemas/WebhookBody"}
    assert "WebhookBody" in document["components"]["schemas"]
