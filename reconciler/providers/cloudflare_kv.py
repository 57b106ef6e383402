"""The Workers KV adapter: the routing table's namespace, its keys and bulk writes.

Built on :class:`~reconciler.providers.cloudflare.CloudflareClient` (one token, one bucket, one
call counter); used by the observer (keys and their metadata) and by the ``write_routes``,
``delete_hostname`` and ``create_routes_namespace`` handlers. Shapes follow the official SDK
(``cloudflare/resources/kv/namespaces``), limits ROUTING.md section 3.

- ``list_namespaces()``: ``GET /accounts/{a}/storage/kv/namespaces?page=N&per_page=100``;
- ``create_namespace(title)``: ``POST /accounts/{a}/storage/kv/namespaces`` ``{title}``;
- ``list_keys(ns)``: ``GET .../namespaces/{ns}/keys?limit=1000[&cursor=]`` until the cursor
  is empty;
- ``bulk_put(ns, pairs)``: ``PUT .../namespaces/{ns}/bulk``, up to 10,000 pairs per request;
- ``bulk_delete(ns, keys)``: ``POST .../namespaces/{ns}/bulk/delete``, up to 10,000 keys;
- ``bulk_get(ns, keys)``: ``POST .../namespaces/{ns}/bulk/get`` ``{keys, type: "text"}``, 100
  keys per request.

Bulk writes and deletes state final values, so they are retried like reads. A result naming
``unsuccessful_keys`` raises :class:`~reconciler.errors.TransientError` (the SDK: "keys that
failed and should be retried"): the action is retried, and nothing is recorded as done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import PermanentError, TransientError
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.cloudflare_errors import PROVIDER
from reconciler.providers.http import Call

__all__ = [
    "BULK_GET_LIMIT",
    "BULK_LIMIT",
    "KEYS_PAGE",
    "KvClient",
    "KvKey",
    "KvPair",
]

_NAMESPACES = "/accounts/{account_id}/storage/kv/namespaces"
_NAMESPACE = _NAMESPACES + "/{namespace_id}"
KEYS = _NAMESPACE + "/keys"
BULK = _NAMESPACE + "/bulk"
BULK_DELETE = _NAMESPACE + "/bulk/delete"
BULK_GET = _NAMESPACE + "/bulk/get"
BULK_LIMIT = 10_000
"""Pairs per bulk write or keys per bulk delete (ROUTING.md section 3)."""
BULK_GET_LIMIT = 100
"""Keys per bulk get (the SDK: "maximum of 100")."""
KEYS_PAGE = 1000
"""Keys per listing page (the KV API's largest ``limit``)."""


@dataclass(frozen=True, slots=True)
class KvKey:
    """A listed key and its metadata (None when it has none)."""

    name: str
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class KvPair:
    """One pair of a bulk write; ``metadata`` is JSON (at most 1,024 bytes serialised)."""

    key: str
    value: str
    metadata: Mapping[str, str] | None = None


class KvClient:
    """Workers KV through one account's :class:`CloudflareClient`."""

    def __init__(self, cloudflare: CloudflareClient) -> None:
        """Send every request through ``cloudflare`` (its bucket and counters)."""
        self._cf = cloudflare

    def _path(self, **more: str) -> dict[str, str]:
        return {"account_id": self._cf.account_id, **more}

    async def list_namespaces(self) -> dict[str, str]:
        """Every namespace of the account: title -> id."""
        found: dict[str, str] = {}
        page = 1
        while True:
            call = Call("GET", _NAMESPACES, self._path(), params={"page": page, "per_page": 100})
            result = await self._cf.result(call)
            if not isinstance(result, list):
                raise PermanentError(PROVIDER, f"{call.label}: result is not a list")
            fresh = 0
            for item in result:
                if isinstance(item, dict) and isinstance(item.get("title"), str):
                    title, ident = item["title"], str(item.get("id", ""))
                    fresh += title not in found
                    found.setdefault(title, ident)
            if len(result) < 100 or fresh == 0:
                return found
            page += 1

    async def find_namespace(self, title: str) -> str | None:
        """The id of the namespace titled ``title``; None when the account has none."""
        return (await self.list_namespaces()).get(title)

    async def create_namespace(self, title: str) -> str:
        """Create the namespace ``title`` (or find it, after a lost answer); its id.

        Not idempotent on the wire: the namespace is looked up by title first and after an
        unknown outcome, so a rerun never makes a second one.
        """
        existing = await self.find_namespace(title)
        if existing is not None:
            return existing
        call = Call("POST", _NAMESPACES, self._path(), json={"title": title}, idempotent=False)

        def namespace_id(result: Any) -> str:
            if not isinstance(result, dict) or not isinstance(result.get("id"), str):
                raise PermanentError(PROVIDER, f"{call.label}: the answer names no namespace id")
            return str(result["id"])

        return await self._cf.create_or_find(
            call, namespace_id, lambda: self.find_namespace(title), resend=False
        )

    async def list_keys(self, namespace_id: str) -> list[KvKey]:
        """Every key of the namespace with its metadata, 1,000 per request (cursor paging)."""
        keys: list[KvKey] = []
        cursor = ""
        while True:
            params: dict[str, str | int] = {"limit": KEYS_PAGE}
            if cursor:
                params["cursor"] = cursor
            call = Call("GET", KEYS, self._path(namespace_id=namespace_id), params=params)
            response = await self._cf.send(call)
            body = response.json()
            result = body.get("result") if isinstance(body, dict) else None
            if not isinstance(result, list):
                raise PermanentError(PROVIDER, f"{call.label}: result is not a list")
            for item in result:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    keys.append(KvKey(name=item["name"], metadata=item.get("metadata")))
            info = body.get("result_info") if isinstance(body, dict) else None
            following = info.get("cursor") if isinstance(info, dict) else None
            if not result or not isinstance(following, str) or not following:
                return keys
            if following == cursor:
                return keys  # a server that ignores the cursor: nothing new will come
            cursor = following

    async def bulk_put(self, namespace_id: str, pairs: Sequence[KvPair]) -> int:
        """Write every pair, 10,000 per request; returns the number of requests sent."""
        requests = 0
        for start in range(0, len(pairs), BULK_LIMIT):
            body = [_pair_json(pair) for pair in pairs[start : start + BULK_LIMIT]]
            call = Call("PUT", BULK, self._path(namespace_id=namespace_id), json=body)
            _check_bulk(call, await self._cf.result(call))
            requests += 1
        return requests

    async def bulk_delete(self, namespace_id: str, keys: Sequence[str]) -> int:
        """Delete every key (absent keys are fine), 10,000 per request; requests sent."""
        requests = 0
        for start in range(0, len(keys), BULK_LIMIT):
            body = list(keys[start : start + BULK_LIMIT])
            call = Call("POST", BULK_DELETE, self._path(namespace_id=namespace_id), json=body)
            _check_bulk(call, await self._cf.result(call))
            requests += 1
        return requests

    async def bulk_get(self, namespace_id: str, keys: Sequence[str]) -> dict[str, str | None]:
        """The text values of ``keys`` (None for an absent key), 100 keys per request."""
        values: dict[str, str | None] = {}
        for start in range(0, len(keys), BULK_GET_LIMIT):
            chunk = list(keys[start : start + BULK_GET_LIMIT])
            call = Call(
                "POST",
                BULK_GET,
                self._path(namespace_id=namespace_id),
                json={"keys": chunk, "type": "text"},
            )
            result = await self._cf.result(call)
            got = result.get("values") if isinstance(result, dict) else None
            if not isinstance(got, dict):
                raise PermanentError(PROVIDER, f"{call.label}: the answer has no values")
            for key in chunk:
                value = got.get(key)
                values[key] = value if isinstance(value, str) else None
        return values


def _pair_json(pair: KvPair) -> dict[str, Any]:
    body: dict[str, Any] = {"key": pair.key, "value": pair.value}
    if pair.metadata is not None:
        body["metadata"] = dict(pair.metadata)
    return body


def _check_bulk(call: Call, result: Any) -> None:
    """Raise when Cloudflare reports keys it did not write (retry the whole request)."""
    if not isinstance(result, dict):
        return  # an answer without counts: the envelope said success
    failed = result.get("unsuccessful_keys")
    if isinstance(failed, list) and failed:
        shown = ", ".join(str(k) for k in failed[:5])
        raise TransientError(
            PROVIDER, f"{call.label}: {len(failed)} keys were not written ({shown})"
        )
