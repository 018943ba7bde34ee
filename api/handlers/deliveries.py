"""Webhook deliveries: a subscription's history and a manual retry of a dead one."""

from __future__ import annotations

from aiohttp import web

from api import render
from api.models import Delivery, DeliveryList, DeliveryPageQuery
from api.routing import Answer, Call, Operation, json_response
from indexer import deliveries


async def list_deliveries(call: Call) -> web.Response:
    query = call.query_as(DeliveryPageQuery)
    async with call.pool.acquire() as conn:
        rows, cursor = await deliveries.list_deliveries(
            conn,
            call.workspace_id,
            call.path_id(),
            status=query.status,
            limit=query.limit,
            after=query.after,
        )
    return json_response(DeliveryList(items=[render.delivery(r) for r in rows], next=cursor))


async def retry_delivery(call: Call) -> web.Response:
    async with call.pool.acquire() as conn:
        row = await deliveries.retry_delivery(conn, call.workspace_id, call.path_id())
    return json_response(render.delivery(row))


OPERATIONS = [
    Operation(
        "GET",
        "/v1/subscriptions/{id}/deliveries",
        "listDeliveries",
        "A subscription's webhook deliveries, newest first",
        list_deliveries,
        [Answer(200, "Newest first", DeliveryList)],
        tag="deliveries",
        query=DeliveryPageQuery,
    ),
    Operation(
        "POST",
        "/v1/deliveries/{id}/retry",
        "retryDelivery",
        "Send a dead delivery again",
        retry_delivery,
        [Answer(200, "Pending again, from attempt one", Delivery)],
        tag="deliveries",
        refusals={
            409: "The delivery is not dead (delivery_status), or its subscription's webhook "
            "is disabled or removed (webhook-disabled, with webhook_disabled_reason)"
        },
    ),
]
