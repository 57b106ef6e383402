"""The Cloudflare client's plumbing: one account and zone's calls, results, pages and creates.

Who calls it: the job mix-ins of :class:`reconciler.providers.cloudflare.CloudflareClient`
(``cloudflare_pages.py``, ``cloudflare_zone.py``) and the client itself build on
:class:`CloudflareApi`; the client's constructor sets the attributes declared here. What it
calls: :class:`reconciler.providers.http.HttpApi` (bucket, retries, error mapping).

Every call goes through one :class:`~reconciler.providers.http.HttpApi`: one token, one bucket,
one call counter. :meth:`CloudflareApi._paginate` follows CONTRACT.md §1.2 (``page=N`` until a
page comes back empty, or short, or ``total_count`` is reached);
:meth:`CloudflareApi.create_or_find` looks for the object a non-idempotent create may have
made before sending it again.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from reconciler.errors import PermanentError, TransientError
from reconciler.providers.cloudflare_errors import PROVIDER
from reconciler.providers.http import Call, HttpApi
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.providers.shared_calls import ProjectMemo, PurgeBatcher

__all__ = ["ACCOUNT", "CloudflareApi"]

T = TypeVar("T")

ACCOUNT = "/accounts/{account_id}"
"""The path prefix of the account's endpoints."""


class CloudflareApi:
    """The plumbing every Cloudflare job shares; the client's constructor sets the fields."""

    account_id: str
    zone_id: str
    bucket: TokenBucket
    memo: ProjectMemo
    _api: HttpApi
    _retry: RetryPolicy
    _rng: random.Random
    _sleep: Callable[[float], Awaitable[None]]
    _purge_chunk: int
    _purges: PurgeBatcher

    def _account(self, **more: str) -> dict[str, str]:
        return {"account_id": self.account_id, **more}

    def _zone(self, **more: str) -> dict[str, str]:
        return {"zone_id": self.zone_id, **more}

    async def _result(self, call: Call) -> Any:
        """Send ``call`` and return the envelope's ``result`` (or a bare, unenveloped body)."""
        response = await self._api.send(call)
        return _result_of(response)

    async def send(self, call: Call) -> httpx.Response:
        """Send one call through the shared plumbing (bucket, retries, error mapping).

        For the sibling adapters of this account and zone (``cloudflare_kv.py``,
        ``cloudflare_workers.py``): one token, one bucket, one call counter.
        """
        return await self._api.send(call)

    async def result(self, call: Call) -> Any:
        """Send one call and return its ``result`` (see :meth:`send`)."""
        return await self._result(call)

    def _malformed(self, call: Call, what: str) -> PermanentError:
        return PermanentError(PROVIDER, f"{call.label}: unexpected answer: {what}")

    async def _object(self, call: Call) -> dict[str, Any]:
        result = await self._result(call)
        if not isinstance(result, dict):
            raise self._malformed(call, "result is not an object")
        return result

    async def _text(self, call: Call, name: str, missing: str) -> str:
        """The object result's non-empty text field ``name``; malformed (``missing``) if not."""
        value = (await self._object(call)).get(name)
        if not isinstance(value, str) or not value:
            raise self._malformed(call, missing)
        return value

    async def _list(self, call: Call, name: str, missing: str) -> list[Any]:
        """The object result's list field ``name``; malformed (``missing``) if not a list."""
        value = (await self._object(call)).get(name)
        if not isinstance(value, list):
            raise self._malformed(call, missing)
        return value

    async def _paginate(
        self,
        template: str,
        path: Mapping[str, str],
        params: Mapping[str, str | int],
        *,
        parse: Callable[[dict[str, Any]], T],
        per_page: int | None,
        total_count_applies: bool,
        stop_when: Callable[[T], bool] | None = None,
    ) -> list[T]:
        """Every item of a paged list, asking ``page+1`` until a page comes back empty.

        Each item is parsed as its page arrives (a large listing is never parsed in one go,
        which would hold the event loop), so ``stop_when`` sees the parsed item.

        Stops early on a short page (fewer items than the page size the server reports, or the
        one asked for), once ``total_count`` items are in hand when ``total_count_applies``
        (an unfiltered list: ``total_count`` counts results "without search parameters"), or
        when ``stop_when`` accepts an item. Items already seen (same ``id``) are skipped, so a
        create between two pages does not duplicate an entry.
        """
        items: list[T] = []
        seen: set[str] = set()
        page = 1
        while True:
            query: dict[str, str | int] = {**params, "page": page}
            if per_page is not None:
                query["per_page"] = per_page
            call = Call("GET", template, path, params=query)
            response = await self._api.send(call)
            body = _json(response)
            result = body.get("result") if isinstance(body, dict) else None
            if not isinstance(result, list):
                raise self._malformed(call, "result is not a list")
            if not result:
                return items
            fresh = 0
            for item in result:
                if not isinstance(item, dict):
                    raise self._malformed(call, "a list item is not an object")
                key = str(item.get("id", ""))
                if key and key in seen:
                    continue
                seen.add(key)
                parsed = parse(item)
                items.append(parsed)
                fresh += 1
                if stop_when is not None and stop_when(parsed):
                    return items
            info = body.get("result_info") if isinstance(body, dict) else None
            info = info if isinstance(info, dict) else {}
            size = info.get("per_page")
            page_size = size if isinstance(size, int) and size > 0 else per_page
            total = info.get("total_count")
            if fresh == 0:  # the server ignored ``page``: nothing new will come
                return items
            if page_size is not None and len(result) < page_size:
                return items
            if total_count_applies and isinstance(total, int) and len(items) >= total:
                return items
            page += 1

    async def create_or_find(
        self,
        call: Call,
        parse: Callable[[Any], T],
        find: Callable[[], Awaitable[T | None]],
        *,
        resend: bool = True,
    ) -> T:
        """Send a non-idempotent create; after an unknown outcome, look before resending.

        ``HttpApi.send`` already retries errors that certainly had no effect. When the outcome
        is unknown (a timeout, a 5xx), ``find`` looks for the object: found, it is returned;
        not found, the create is sent again after a backoff, up to the policy's attempts.
        With ``resend=False`` it is sent once: not found, the error stands (a rerun looks
        first).
        """
        attempt = 0
        while True:
            try:
                return parse(await self._result(call))
            except TransientError:
                attempt += 1
                if resend and attempt >= self._retry.attempts:
                    raise
                found = await find()
                if found is not None:
                    return found
                if not resend:
                    raise
                await self._sleep(self._retry.backoff(attempt - 1, self._rng))


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _result_of(response: httpx.Response) -> Any:
    """The envelope's ``result``, or the body itself when it is not enveloped (bare DELETE)."""
    body = _json(response)
    if isinstance(body, dict) and "success" in body:
        return body.get("result")
    return body
