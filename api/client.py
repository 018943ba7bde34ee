"""A small client of the v1 API, for the customer's commands (`logfill backfill`,
`subscriptions`, `events`, ...) and the demo.

It talks HTTP like any customer would (httpx, bearer key). A problem+json
answer becomes one `ApiError` whose message is one clear line naming the
status, the detail and each field pointer.

No module of the server imports it: it knows the API only as a customer does,
and takes nothing from `indexer` but the vocabulary (`indexer.domain`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

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
        return await self.call("GET", f"/v1/backfill/{_segment(backfill_id)}")

    async def backfill_action(self, backfill_id: str, action: str) -> JSON:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return await self.call("POST", f"/v1/backfill/{_segment(backfill_id)}/{action}")

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
            "GET", f"/v1/subscriptions/{_segment(subscription_id)}/backfills", params=params
        )

    async def update_workspace(self, body: Mapping[str, Any]) -> JSON:
        return await self.call("PATCH", "/v1/workspace", json=dict(body))

    async def list_subscriptions(self, *, limit: int = 100, after: str | None = None) -> JSON:
        return await self.call("GET", "/v1/subscriptions", params=_page(limit, after))

    async def get_subscription(self, subscription_id: str) -> JSON:
        return await self.call("GET", f"/v1/subscriptions/{_segment(subscription_id)}")

    async def update_subscription(self, subscription_id: str, body: Mapping[str, Any]) -> JSON:
        path = f"/v1/subscriptions/{_segment(subscription_id)}"
        return await self.call("PATCH", path, json=dict(body))

    async def delete_subscription(self, subscription_id: str) -> None:
        await self.request("DELETE", f"/v1/subscriptions/{_segment(subscription_id)}")

    async def rotate_webhook_secret(self, subscription_id: str) -> JSON:
        path = f"/v1/subscriptions/{_segment(subscription_id)}/webhook-secret/rotate"
        return await self.call("POST", path)

    async def list_deliveries(
        self,
        subscription_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> JSON:
        params = _page(limit, after)
        if status:
            params["status"] = status
        path = f"/v1/subscriptions/{_segment(subscription_id)}/deliveries"
        return await self.call("GET", path, params=params)

    async def retry_delivery(self, delivery_id: str) -> JSON:
        return await self.call("POST", f"/v1/deliveries/{_segment(delivery_id)}/retry")

    async def export_events(
        self,
        subscription_id: str,
        media_type: str,
        *,
        from_block: int | None = None,
        to_block: int | None = None,
    ) -> AsyncIterator[bytes]:
        """The events in the bounds as the API streams them (NDJSON or CSV), chunk by chunk."""
        params: dict[str, str | int] = {}
        if from_block is not None:
            params["from_block"] = from_block
        if to_block is not None:
            params["to_block"] = to_block
        path = f"/v1/subscriptions/{_segment(subscription_id)}/events"
        request = self._http.build_request(
            "GET", path, params=params, headers={"Accept": media_type}
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the API at {self.base_url}: {exc}") from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                _raise_for_problem(response)
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the export was cut off: {exc}") from exc
        finally:
            await response.aclose()

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


def _page(limit: int, after: str | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": limit}
    if after:
        params["after"] = after
    return params


def _segment(value: str) -> str:
    """An id as one path segment: `../workspace` must not reach another route."""
    return quote(value, safe="")
