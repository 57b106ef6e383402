"""Cloudflare zone calls: custom hostnames (list, read, create, edit, delete) and cache purges.

Who calls it: :class:`reconciler.providers.cloudflare.CloudflareClient` inherits
:class:`ZoneCalls`. What it calls: the plumbing of :class:`~.cloudflare_api.CloudflareApi`.

A custom hostname create is not idempotent: after an unknown outcome the hostname is looked up
by name before the create is sent again, and a duplicate is adopted only when it is ours
(CONTRACT.md §4). Purges are idempotent; :meth:`ZoneCalls.purge_hosts` shares one request
among concurrent callers (CONTRACT.md §5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler.errors import NotFoundError, PermanentError
from reconciler.providers.cloudflare_api import CloudflareApi
from reconciler.providers.cloudflare_errors import PROVIDER, DuplicateHostnameError
from reconciler.providers.cloudflare_models import CustomHostname
from reconciler.providers.http import Call

__all__ = ["HOSTNAMES_PER_PAGE", "PURGE_CHUNK", "ZoneCalls"]

HOSTNAMES = "/zones/{zone_id}/custom_hostnames"
HOSTNAME = HOSTNAMES + "/{custom_hostname_id}"
PURGE = "/zones/{zone_id}/purge_cache"

HOSTNAMES_PER_PAGE = 50
"""The largest custom hostname page (CONTRACT.md §4.2: ``per_page`` 5-50)."""
PURGE_CHUNK = 100
"""Items per purge request: the current docs' limit on every plan (CONTRACT.md §2.5: 100
operations and 100 URLs per request; the older [S] text's 30 is out of date)."""


class ZoneCalls(CloudflareApi):
    """The custom hostname and cache endpoints of one zone (a part of the Cloudflare client)."""

    async def list_custom_hostnames(
        self,
        *,
        hostname: str | None = None,
        per_page: int = HOSTNAMES_PER_PAGE,
        hostname_status: str | None = None,
        ssl_status: str | None = None,
    ) -> list[CustomHostname]:
        """Every custom hostname of the zone, the one named ``hostname``, or those in a status.

        Args:
            hostname: the ``hostname`` filter (exact name), or None for all.
            per_page: page size, 5-50 (CONTRACT.md §4.2); 5,000 hostnames at 50 = 100 requests.
            hostname_status: only hostnames in this ``status`` (§4.2 Δ [SDK], the §4.4 enum).
            ssl_status: only hostnames whose ``ssl.status`` is this (the §4.5 enum).
        """
        if not 5 <= per_page <= HOSTNAMES_PER_PAGE:
            raise ValueError("per_page must be between 5 and 50")
        params: dict[str, str | int] = {}
        if hostname is not None:
            params["hostname"] = hostname
        if hostname_status is not None:
            params["hostname_status"] = hostname_status
        if ssl_status is not None:
            params["ssl_status"] = ssl_status
        return await self._paginate(
            HOSTNAMES,
            self._zone(),
            params,
            parse=CustomHostname.from_json,
            per_page=per_page,
            total_count_applies=not params,  # total_count ignores every filter
        )

    async def _find_hostname(self, hostname: str) -> CustomHostname | None:
        wanted = hostname.strip().rstrip(".").lower()
        for found in await self.list_custom_hostnames(hostname=wanted):
            if found.hostname.lower() == wanted:
                return found
        return None

    async def get_custom_hostname(self, hostname_id: str) -> CustomHostname:
        """``GET /zones/{z}/custom_hostnames/{id}``.

        Raises:
            NotFoundError: no such hostname (1436).
        """
        call = Call("GET", HOSTNAME, self._zone(custom_hostname_id=hostname_id))
        return CustomHostname.from_json(await self._object(call))

    async def create_custom_hostname(
        self,
        hostname: str,
        *,
        ssl_method: str,
        custom_origin_server: str | None = None,
        custom_metadata: Mapping[str, str] | None = None,
        adopt: Callable[[CustomHostname], bool] | None = None,
    ) -> CustomHostname:
        """``POST /zones/{z}/custom_hostnames`` with ``ssl: {method, type: "dv"}``.

        Not idempotent: after an unknown outcome the hostname is looked up by name before the
        create is sent again, and one found then is the one this call created (the caller saw
        it absent). A duplicate (1406) is returned only when ``adopt`` accepts it (the caller's
        records say it is ours; by default: it carries the ownership marker), otherwise a
        ``PermanentError`` says it belongs to someone else.

        Args:
            hostname: the customer's hostname (an A-label).
            ssl_method: ``http``, ``txt`` or ``email``.
            custom_origin_server: only on accounts entitled to it; the reconciler routes
                through the dispatch Worker and sends none (docs/routing.md).
            custom_metadata: only on accounts entitled to it (``CLOUDFLARE_CUSTOM_METADATA``).
            adopt: decides whether an existing hostname of that name is ours.
        """
        body: dict[str, Any] = {"hostname": hostname, "ssl": {"method": ssl_method, "type": "dv"}}
        if custom_origin_server is not None:
            body["custom_origin_server"] = custom_origin_server
        if custom_metadata is not None:
            body["custom_metadata"] = dict(custom_metadata)
        call = Call("POST", HOSTNAMES, self._zone(), json=body, idempotent=False)
        ours = adopt if adopt is not None else (lambda found: found.owner is not None)

        async def find() -> CustomHostname | None:
            return await self._find_hostname(hostname)

        try:
            return await self.create_or_find(call, CustomHostname.from_json, find)
        except DuplicateHostnameError as exc:
            existing = await self._find_hostname(hostname)
            if existing is not None and ours(existing):
                return existing
            raise PermanentError(
                PROVIDER,
                f"custom hostname {hostname} already exists and our records do not say we "
                "created it",
                status=exc.status,
            ) from exc

    async def edit_custom_hostname(
        self,
        hostname_id: str,
        *,
        ssl_method: str | None = None,
        custom_origin_server: str | None = None,
        custom_metadata: Mapping[str, str] | None = None,
    ) -> CustomHostname:
        """``PATCH /zones/{z}/custom_hostnames/{id}``; only the given fields are sent.

        Sending ``ssl_method`` equal to the current one re-triggers validation (CONTRACT.md
        §4.1). A PATCH states final values, so it is retried like a read. Metadata replaces the
        whole object: keep the ownership marker in it.

        Raises:
            ValueError: nothing to change.
            NotFoundError: no such hostname.
        """
        body: dict[str, Any] = {}
        if ssl_method is not None:
            body["ssl"] = {"method": ssl_method, "type": "dv"}
        if custom_origin_server is not None:
            body["custom_origin_server"] = custom_origin_server
        if custom_metadata is not None:
            body["custom_metadata"] = dict(custom_metadata)
        if not body:
            raise ValueError("edit_custom_hostname needs at least one field to change")
        call = Call("PATCH", HOSTNAME, self._zone(custom_hostname_id=hostname_id), json=body)
        return CustomHostname.from_json(await self._object(call))

    async def delete_custom_hostname(self, hostname_id: str) -> None:
        """``DELETE /zones/{z}/custom_hostnames/{id}``; already gone (404/1436) is success.

        Accepts both the bare ``{"id": ...}`` body and the envelope (CONTRACT.md §4.1).
        """
        call = Call("DELETE", HOSTNAME, self._zone(custom_hostname_id=hostname_id))
        try:
            await self._api.send(call)
        except NotFoundError:
            return

    # ------------------------------------------------------------------------- cache

    async def purge_cache(
        self,
        *,
        hosts: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        files: Sequence[str] = (),
    ) -> None:
        """``POST /zones/{z}/purge_cache``: one request per kind and chunk of ``purge_chunk``.

        The body carries exactly one of ``hosts``, ``prefixes`` or ``files`` (CONTRACT.md §5).
        Purging is idempotent, so each request is retried like a read. Duplicates are dropped.
        """
        for key, values in (("hosts", hosts), ("prefixes", prefixes), ("files", files)):
            unique = list(dict.fromkeys(values))
            for start in range(0, len(unique), self._purge_chunk):
                chunk = unique[start : start + self._purge_chunk]
                await self._api.send(Call("POST", PURGE, self._zone(), json={key: chunk}))

    async def purge_hosts(self, hosts: Sequence[str]) -> None:
        """Purge ``hosts``, sharing requests with concurrent callers (up to ``purge_chunk``).

        Waits ``purge_window`` for other purges to join before sending; returns when this
        caller's hosts are purged, or raises what their request raised.
        """
        if hosts:
            await self._purges.purge(list(dict.fromkeys(hosts)))

    async def _purge_batch(self, hosts: list[str]) -> None:
        await self._api.send(Call("POST", PURGE, self._zone(), json={"hosts": hosts}))
