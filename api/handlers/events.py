"""GET /v1/subscriptions/{id}/events: stored matches as JSON pages or a streamed export.

`Accept` chooses the form. `application/json` (the default) answers one page
with a `next` cursor. `application/x-ndjson` (one event per line, the JSON page's
items) and `text/csv` (one row per event, decoded arguments as a JSON column)
stream every event within the block bounds, read in batches from the database
and written as they come, so memory stays flat whatever the size of the set.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import mimeparse
import orjson
import structlog
from aiohttp import web

from api.models import EventList, EventPageQuery, PageQuery, RemovedEventList
from api.problems import Problem
from api.routing import JSON, Answer, Call, Operation, json_response
from indexer import events
from indexer.db.pool import UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

NDJSON = "application/x-ndjson"
CSV = "text/csv"
# On a tie (`*/*`) mimeparse picks the last one: JSON stays the default.
FORMATS = (CSV, NDJSON, JSON)
CSV_COLUMNS = (
    "id",
    "block_number",
    "block_hash",
    "transaction_hash",
    "transaction_index",
    "log_index",
    "address",
    "topic0",
    "topic1",
    "topic2",
    "topic3",
    "data",
    "event",
    "args",
    "backfill_id",
    "stored_at",
)
_DUMP_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC  # times as the JSON pages write them


def chosen_format(accept: str | None) -> str:
    """The form the client accepts best; no Accept header means JSON; none of ours is 406."""
    if not accept:
        return JSON
    chosen = str(mimeparse.best_match(FORMATS, accept))
    if not chosen:
        raise Problem(
            406,
            "Not Acceptable",
            f"events are served as {', '.join(reversed(FORMATS))}; Accept asked for {accept!r}",
            problem_type="not-acceptable",
        )
    return chosen


def ndjson_lines(items: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        orjson.dumps({**item, "decoded": item.get("decoded")}, option=_DUMP_OPTIONS) + b"\n"
        for item in items
    )


def csv_rows(items: Sequence[dict[str, Any]], *, header: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CSV_COLUMNS)
    for item in items:
        topics = [*item["topics"], "", "", "", ""][:4]
        decoded = item.get("decoded")
        writer.writerow(
            (
                item["id"],
                item["block_number"],
                item["block_hash"],
                item["transaction_hash"],
                item["transaction_index"],
                item["log_index"],
                item["address"],
                *topics,
                item["data"],
                decoded["event"] if decoded else "",
                orjson.dumps(decoded["args"]).decode() if decoded else "",
                item["backfill_id"] or "",
                orjson.dumps(item["stored_at"], option=_DUMP_OPTIONS).decode().strip('"'),
            )
        )
    return out.getvalue().encode()


async def list_events(call: Call) -> web.StreamResponse:
    query = call.query_as(EventPageQuery)
    media_type = chosen_format(call.request.headers.get("Accept"))
    bounds = events.BlockBounds(query.from_block, query.to_block)
    if media_type == JSON:
        async with call.pool.acquire() as conn:
            items, cursor = await events.list_events(
                conn,
                call.workspace_id,
                call.path_id(),
                limit=query.limit,
                after=query.after,
                bounds=bounds,
            )
        return json_response(EventList.model_validate({"items": items, "next": cursor}))
    async with call.pool.acquire() as conn:
        reader = await events.open_reader(
            conn, call.workspace_id, call.path_id(), bounds, query.after
        )
    return await stream_export(call.request, call.pool, reader, media_type)


async def list_removed_events(call: Call) -> web.StreamResponse:
    query = call.query_as(PageQuery)
    async with call.pool.acquire() as conn:
        items, cursor = await events.list_removed_events(
            conn, call.workspace_id, call.path_id(), limit=query.limit, after=query.after
        )
    return json_response(RemovedEventList.model_validate({"items": items, "next": cursor}))


async def stream_export(
    request: web.Request,
    pool: asyncpg.Pool,
    reader: events.EventReader,
    media_type: str,
    *,
    filename: str | None = None,
) -> web.StreamResponse:
    """Write every event of `reader` as NDJSON or CSV while reading them (the API's
    export, and the dashboard's download with a file name)."""
    render: Callable[[Sequence[dict[str, Any]]], bytes] = (
        ndjson_lines if media_type == NDJSON else csv_rows
    )
    headers = {"Content-Type": f"{media_type}; charset=utf-8"}
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response = web.StreamResponse(headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    if media_type == CSV:
        await response.write(csv_rows([], header=True))
    written = 0
    try:
        async for batch in events.export_events(pool, reader):
            await response.write(render(batch))
            written += len(batch)
    except ConnectionResetError:
        log.info("event_export_abandoned", subscription_id=str(reader.subscription_id))
        return response
    except UNAVAILABLE_ERRORS as exc:
        # The headers are gone: cut the connection so the client sees an incomplete
        # transfer rather than a short file that looks whole.
        log.warning("event_export_interrupted", written=written, error=type(exc).__name__)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


OPERATIONS = [
    Operation(
        "GET",
        "/v1/subscriptions/{id}/events",
        "listSubscriptionEvents",
        "Stored matches in chain order: JSON pages, or every one streamed",
        list_events,
        [
            Answer(
                200,
                "In chain order. JSON: a page with `next`. NDJSON: one event per line. "
                "CSV: a header row, then one row per event (decoded args as JSON).",
                EventList,
                alternatives={NDJSON: "One event per line", CSV: "One row per event"},
            )
        ],
        tag="subscriptions",
        query=EventPageQuery,
        refusals={406: "Accept names none of application/json, application/x-ndjson, text/csv"},
        description="`from_block`/`to_block` bound the events (inclusive). With `Accept: "
        "application/x-ndjson` or `text/csv` every event in the bounds is streamed (after "
        "the `after` cursor, if given) and `limit` is ignored; otherwise one page of "
        "`limit` events is answered with the cursor of the next.",
    ),
    Operation(
        "GET",
        "/v1/subscriptions/{id}/removed-events",
        "listSubscriptionRemovedEvents",
        "Matches a reorg removed, kept for audit",
        list_removed_events,
        [Answer(200, "By reorg, then in chain order; a page with `next`.", RemovedEventList)],
        tag="subscriptions",
        query=PageQuery,
        description="A reorg below the safe head orphaned these stored matches: they left "
        "the events listing, were refunded and announced with a `backfill.matches.removed` "
        "webhook, and the blocks were scanned again (the canonical matches are in the "
        "events listing).",
    ),
]
