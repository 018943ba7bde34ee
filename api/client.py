"""A small client of the v1 API, for `logfill backfill ...` and the demo.

It talks HTTP like any customer would (httpx, bearer key). A problem+json
answer becomes one `ApiError` whose message is one clear line naming the
status, the detail and each field pointer. `watch_backfill` draws the progress
bar that both `logfill backfill watch` and `logfill demo` show.

No module of the server imports it: it knows the API only as a customer does,
and takes nothing from `indexer` but the vocabulary (`indexer.domain`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from indexer.domain import TERMINAL

JSON = dict[str, Any]
ACTIONS = ("pause", "resume", "cancel", "retry")


class ApiError(Exception):
    """The API refused a call (problem+json), or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, problem: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.problem: Mapping[str, Any] = problem or {}


def describe_problem(status: int, problem: Mapping[str, Any]) -> str:
    """`422 Unprocessable Content: detail (/from_block: must be ...; /to_block: ...)`."""
    title = problem.get("title") or "error"
    line = f"{status} {title}"
    if problem.get("detail"):
        line += f": {problem['detail']}"
    fields = []
    for error in problem.get("errors") or []:
        where = error.get("pointer") or error.get("parameter") or error.get("header") or ""
        fields.append(f"{where}: {error.get('detail', '')}" if where else str(error.get("detail")))
    if fields:
        line += f" ({'; '.join(fields)})"
    return line


def _raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:200] or None}
    if not isinstance(problem, dict):
        problem = {"title": response.reason_phrase}
    raise ApiError(response.status_code, describe_problem(response.status_code, problem), problem)


@dataclass(frozen=True)
class Created:
    """The answer to POST /v1/backfill."""

    status: int  # 202 accepted, 200 dry run
    body: JSON
    replayed: bool  # Idempotent-Replayed: the stored first response
    idempotency_key: str | None


class ApiClient:
    """The v1 API at `base_url` with one API key; use as `async with`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "logfill-cli"},
            timeout=timeout,
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the API at {self.base_url}: {exc}") from exc
        _raise_for_problem(response)
        return response

    async def call(self, method: str, path: str, **kwargs: Any) -> JSON:
        body: JSON = (await self.request(method, path, **kwargs)).json()
        return body

    # --- resources -----------------------------------------------------------------

    async def workspace(self) -> JSON:
        return await self.call("GET", "/v1/workspace")

    async def create_subscription(self, body: Mapping[str, Any]) -> JSON:
        return await self.call("POST", "/v1/subscriptions", json=dict(body))

    async def create_backfill(
        self, body: Mapping[str, Any], idempotency_key: str | None = None
    ) -> Created:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self.request("POST", "/v1/backfill", json=dict(body), headers=headers)
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return Created(response.status_code, response.json(), replayed, idempotency_key)

    async def get_backfill(self, backfill_id: str) -> JSON:
        return await self.call("GET", f"/v1/backfill/{backfill_id}")

    async def backfill_action(self, backfill_id: str, action: str) -> JSON:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return await self.call("POST", f"/v1/backfill/{backfill_id}/{action}")

    async def list_backfills(
        self,
        subscription_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> JSON:
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        if after:
            params["after"] = after
        return await self.call(
            "GET", f"/v1/subscriptions/{subscription_id}/backfills", params=params
        )

    async def count_events(self, subscription_id: str) -> int:
        """Stored matches of a subscription, counted page by page."""
        total, after = 0, None
        while True:
            params: dict[str, str | int] = {"limit": 1000}
            if after:
                params["after"] = after
            page = await self.call(
                "GET", f"/v1/subscriptions/{subscription_id}/events", params=params
            )
            total += len(page["items"])
            after = page["next"]
            if not after:
                return total


# --- progress ------------------------------------------------------------------------


def eta_text(backfill: Mapping[str, Any], now: datetime | None = None) -> str:
    """Time left until `estimated_finish_at`, e.g. `12s`, `3m05s`; `-` when unknown."""
    if backfill["status"] in TERMINAL or not backfill.get("estimated_finish_at"):
        return "-"
    return _left(datetime.fromisoformat(str(backfill["estimated_finish_at"])), now)


def _left(when: datetime, now: datetime | None) -> str:
    """Time from `now` until `when`, e.g. `12s`, `3m05s` (`0s` once it has passed)."""
    left = int(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))
    return f"{left // 60}m{left % 60:02d}s" if left >= 60 else f"{left}s"


def progress_detail(backfill: Mapping[str, Any], now: datetime | None = None) -> str:
    cursor = "-" if backfill["cursor"] is None else str(backfill["cursor"])
    detail = (
        f"cursor {cursor}  matches {backfill['matches']}  credits {backfill['credits_charged']}"
        f"  ETA {eta_text(backfill, now)}"
    )
    start = backfill.get("estimated_start_at")
    if backfill["status"] == "queued" and start:
        detail += f"  starts in {_left(datetime.fromisoformat(str(start)), now)}"
    if backfill.get("blocked_reason"):
        detail += f"  blocked: {backfill['blocked_reason']}"
    elif backfill.get("last_transient_error"):
        detail += f"  provider: {backfill['last_transient_error']}"
    return detail


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(bar_width=30),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        auto_refresh=False,
    )


async def watch_backfill(
    client: ApiClient,
    backfill_id: str,
    *,
    console: Console,
    interval: float = 0.5,
    timeout: float | None = None,
) -> JSON:
    """Poll a request, drawing a progress bar, until it reaches a terminal status."""
    with _progress(console) as progress:
        task = progress.add_task("queued", total=None, detail="")
        async with asyncio.timeout(timeout):
            while True:
                backfill = await client.get_backfill(backfill_id)
                total = max(1, int(backfill["blocks_total"]))
                progress.update(
                    task,
                    description=str(backfill["status"]),
                    total=total,
                    completed=round(float(backfill["progress"]) * total),  # noop ends at 100%
                    detail=progress_detail(backfill),
                )
                progress.refresh()
                if backfill["status"] in TERMINAL:
                    return backfill
                await asyncio.sleep(interval)
