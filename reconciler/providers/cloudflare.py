"""The Cloudflare API adapter: Pages, custom hostnames, cache purge and D1, over httpx (async).

Who calls it: the wiring builds one :class:`CloudflareClient` per lane from
:class:`~reconciler.settings.CloudflareSettings`, all sharing one
:class:`~reconciler.providers.ratelimit.TokenBucket` for the token; observers read through it,
executors change the world through it, ``providers/d1.py``'s ``D1HttpDatabase`` runs SQL
through :meth:`CloudflareClient.d1_query`, and the contract tests drive every method.
What it calls: :class:`reconciler.providers.http.HttpApi` (bucket, retries, network errors),
:func:`reconciler.providers.cloudflare_errors.check_envelope` (envelope and error codes) and
the typed values of :mod:`reconciler.providers.cloudflare_models`, and what the clients of one
account share (:mod:`reconciler.providers.shared_calls`: the project memo, batched purges).

Everything follows ``contracts/cloudflare/CONTRACT.md``; docs/cloudflare.md lists endpoints,
tags, error mapping and the rate budget. The rules that matter most:

1. Every request takes a token from the shared bucket first; a 429 pauses that bucket for the
   server's ``retry-after`` and is waited out, never retried hot.
2. Reads, PATCH, DELETE, rollback, purge and read-only D1 queries are idempotent and retried
   with jittered backoff on transient failures (network, timeout, 5xx, 8000000).
3. Creates (a deployment, a custom hostname), a deployment retry and D1 writes are retried only
   when the request certainly had no effect (connection refused, 429). After a timeout or a 5xx
   the client *looks* first: it lists for the object it was creating (by the deployment's
   publish id, by the hostname) and returns it if it exists; only if it does not is the create
   sent again.
4. Lists page with ``page=N`` until a page comes back empty (CONTRACT.md §1.2), stopping early
   on a short page or, for an unfiltered hostname list, once ``total_count`` items are in hand:
   5,000 custom hostnames cost 100 requests.

Tags and ownership markers are described in :mod:`reconciler.providers.cloudflare_models`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from reconciler.build.assethash import pages_asset_hash
from reconciler.core.lane import Lane
from reconciler.errors import NotFoundError, PermanentError, TransientError
from reconciler.providers.cloudflare_errors import (
    PROVIDER,
    DuplicateHostnameError,
    UploadTokenExpiredError,
    check_envelope,
)
from reconciler.providers.cloudflare_models import (
    CustomHostname,
    Deployment,
    DeploymentTag,
    OwnershipMarker,
    PagesProject,
    Stage,
    new_publish_id,
    owner_of,
    ownership_metadata,
)
from reconciler.providers.d1 import D1Result, SqlValue, inline_params, split_sql, strip_comments
from reconciler.providers.http import DEFAULT_RETRY, Call, FormPart, HttpApi
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.providers.shared_calls import (
    PURGE_WINDOW,
    ProjectMemo,
    PurgeBatcher,
    deployment_poll_delays,
)
from reconciler.settings import CloudflareSettings

__all__ = [
    "HOSTNAMES_PER_PAGE",
    "MAX_ASSET_BYTES",
    "MAX_MANIFEST_ENTRIES",
    "PROJECTS_PER_PAGE",
    "PURGE_CHUNK",
    "PURGE_WINDOW",
    "SPECIAL_FILES",
    "CloudflareClient",
    "CustomHostname",
    "Deployment",
    "DeploymentTag",
    "DuplicateHostnameError",
    "OwnershipMarker",
    "PagesProject",
    "ProjectMemo",
    "Stage",
    "deployment_poll_delays",
    "new_publish_id",
    "owner_of",
    "ownership_metadata",
]

T = TypeVar("T")

_ACCOUNT = "/accounts/{account_id}"
PROJECTS = _ACCOUNT + "/pages/projects"
PROJECT = PROJECTS + "/{project_name}"
DEPLOYMENTS = PROJECT + "/deployments"
DEPLOYMENT = DEPLOYMENTS + "/{deployment_id}"
UPLOAD_TOKEN = PROJECT + "/upload-token"
ASSETS_CHECK_MISSING = "/pages/assets/check-missing"
ASSETS_UPLOAD = "/pages/assets/upload"
ASSETS_UPSERT = "/pages/assets/upsert-hashes"
HOSTNAMES = "/zones/{zone_id}/custom_hostnames"
HOSTNAME = HOSTNAMES + "/{custom_hostname_id}"
PURGE = "/zones/{zone_id}/purge_cache"
D1_QUERY = _ACCOUNT + "/d1/database/{database_id}/query"
WORKER = _ACCOUNT + "/workers/scripts/{script_name}"
WORKER_VERSIONS = WORKER + "/versions"
WORKER_DEPLOYMENTS = WORKER + "/deployments"
D1_BOOKMARK = _ACCOUNT + "/d1/database/{database_id}/time_travel/bookmark"
D1_RESTORE = _ACCOUNT + "/d1/database/{database_id}/time_travel/restore"

HOSTNAMES_PER_PAGE = 50
"""The largest custom hostname page (CONTRACT.md §4.2: ``per_page`` 5-50)."""
PURGE_CHUNK = 100
"""Items per purge request: the current docs' limit on every plan (CONTRACT.md §2.5: 100
operations and 100 URLs per request; the older [S] text's 30 is out of date)."""
PROJECTS_PER_PAGE = 100
"""Pages projects asked per page of the project list (CONTRACT.md §1.2: not documented; the
paginator follows the ``per_page`` the server reports)."""
MAX_MANIFEST_ENTRIES = 20_000
MAX_ASSET_BYTES = 25 * 1024 * 1024
UPLOAD_BATCH_FILES = 2000
UPLOAD_BATCH_BYTES = 40 * 1024 * 1024
UPLOAD_CONCURRENCY = 3
SPECIAL_FILES = frozenset({"_headers", "_redirects", "_routes.json", "_worker.js"})
"""Root files sent as multipart file parts, not as assets (wrangler's behaviour, §3.4)."""
_READ_ONLY_SQL = frozenset({"SELECT", "EXPLAIN"})


class CloudflareClient:
    """Async client for the Cloudflare v4 endpoints the reconciler uses (see the module doc)."""

    def __init__(
        self,
        settings: CloudflareSettings,
        *,
        bucket: TokenBucket | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        lane: Lane = Lane.CHANGE,
        purge_chunk: int = PURGE_CHUNK,
        purge_window: float = PURGE_WINDOW,
        memo: ProjectMemo | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Build a client for one account and zone.

        Args:
            settings: base URL, token, account and zone ids, and the rate budget.
            bucket: the token bucket shared by every client of this token. When None a private
                bucket is made from ``settings.rate`` (fine for a one-off command such as
                ``reconciler migrate``; long-running callers must share one).
            retry: attempts and backoff for transient failures.
            transport: an httpx transport (``httpx.MockTransport`` in unit tests).
            timeout: seconds per request (connect, read, write, pool).
            lane: priority lane of this client's requests in the shared bucket.
            purge_chunk: at most this many hosts, prefixes or files per purge request.
            purge_window: seconds :meth:`purge_hosts` waits for concurrent purges to join.
            memo: Pages projects read recently, shared with the other clients of the
                account (a private one when None).
            rng: jitter source for backoff (seeded in tests).
            sleep: how retries wait (a fake in tests).
        """
        if purge_chunk < 1:
            raise ValueError("purge_chunk must be at least 1")
        self.account_id = settings.account_id
        self.zone_id = settings.zone_id
        self._retry = retry
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._purge_chunk = purge_chunk
        self._purges = PurgeBatcher(self._purge_batch, purge_chunk, purge_window)
        self.memo = memo if memo is not None else ProjectMemo()
        token = settings.token.reveal()
        self.bucket = (
            bucket
            if bucket is not None
            else TokenBucket(capacity=settings.rate.requests, period=settings.rate.period)
        )
        self._api = HttpApi(
            provider=PROVIDER,
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {token}"},
            bucket=self.bucket,
            check=self._check,
            retry=retry,
            transport=transport,
            timeout=timeout,
            lane=lane,
            secrets=(token,),
            rng=self._rng,
            sleep=sleep,
        )

    def _check(self, response: httpx.Response, call: Call) -> None:
        check_envelope(response, call, scrub=self._api.scrub)

    def __repr__(self) -> str:
        """Account, zone and base URL; never the token."""
        return (
            f"CloudflareClient(base_url={self._api.base_url!r}, "
            f"account_id={self.account_id!r}, zone_id={self.zone_id!r})"
        )

    @property
    def calls(self) -> Counter[str]:
        """Requests sent (every attempt), by ``"METHOD /path/{template}"``."""
        return self._api.calls

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._api.aclose()

    async def __aenter__(self) -> CloudflareClient:
        """Use as ``async with CloudflareClient(...) as cf``."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on leaving the block."""
        await self.aclose()

    # ------------------------------------------------------------------------- plumbing

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

    async def _paginate(
        self,
        template: str,
        path: Mapping[str, str],
        params: Mapping[str, str | int],
        *,
        per_page: int | None,
        total_count_applies: bool,
        stop_when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Every item of a paged list, asking ``page+1`` until a page comes back empty.

        Stops early on a short page (fewer items than the page size the server reports, or the
        one asked for), once ``total_count`` items are in hand when ``total_count_applies``
        (an unfiltered list: ``total_count`` counts results "without search parameters"), or
        when ``stop_when`` accepts an item. Items already seen (same ``id``) are skipped, so a
        create between two pages does not duplicate an entry.
        """
        items: list[dict[str, Any]] = []
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
                items.append(item)
                fresh += 1
                if stop_when is not None and stop_when(item):
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

    async def _create_or_find(
        self,
        call: Call,
        parse: Callable[[Any], T],
        find: Callable[[], Awaitable[T | None]],
    ) -> T:
        """Send a non-idempotent create; after an unknown outcome, look before resending.

        ``HttpApi.send`` already retries errors that certainly had no effect. When the outcome
        is unknown (a timeout, a 5xx), ``find`` looks for the object: found, it is returned;
        not found, the create is sent again after a backoff, up to the policy's attempts.
        """
        attempt = 0
        while True:
            try:
                return parse(await self._result(call))
            except TransientError:
                attempt += 1
                if attempt >= self._retry.attempts:
                    raise
                found = await find()
                if found is not None:
                    return found
                await self._sleep(self._retry.backoff(attempt - 1, self._rng))

    # ------------------------------------------------------------------------- Pages

    async def get_project(self, project: str) -> PagesProject:
        """``GET /accounts/{a}/pages/projects/{p}``.

        Raises:
            NotFoundError: no such project (8000007).
        """
        call = Call("GET", PROJECT, self._account(project_name=project))
        found = PagesProject.from_json(await self._object(call))
        self.memo.put(found)
        return found

    async def project(self, project: str) -> PagesProject:
        """The project as read within the memo's time to live, or :meth:`get_project`."""
        found = self.memo.get(project)
        return found if found is not None else await self.get_project(project)

    async def list_projects(self) -> list[PagesProject]:
        """Every Pages project of the account, ``PROJECTS_PER_PAGE`` a request (remembered)."""
        items = await self._paginate(
            PROJECTS,
            self._account(),
            {},
            per_page=PROJECTS_PER_PAGE,
            total_count_applies=True,
        )
        found = [PagesProject.from_json(item) for item in items]
        for project in found:
            self.memo.put(project)
        return found

    async def list_deployments(
        self, project: str, *, env: Literal["production", "preview"] | None = None
    ) -> list[Deployment]:
        """Every deployment of ``project`` (all pages), optionally of one environment.

        ``per_page`` is not sent: its limits are UNCONFIRMED (CONTRACT.md §1.2), so the
        server's default is used and pages are asked until one comes back empty or short.
        """
        params: dict[str, str | int] = {"env": env} if env is not None else {}
        items = await self._paginate(
            DEPLOYMENTS,
            self._account(project_name=project),
            params,
            per_page=None,
            total_count_applies=False,
        )
        return [Deployment.from_json(item) for item in items]

    async def get_deployment(self, project: str, deployment_id: str) -> Deployment:
        """``GET .../deployments/{id}``.

        Raises:
            NotFoundError: no such deployment (HTTP 404).
        """
        call = Call(
            "GET", DEPLOYMENT, self._account(project_name=project, deployment_id=deployment_id)
        )
        return Deployment.from_json(await self._object(call))

    async def retry_deployment(self, project: str, deployment_id: str) -> Deployment:
        """``POST .../deployments/{id}/retry``: not idempotent (it may start a new deployment).

        Resent only when the request certainly had no effect; otherwise the error is raised
        and the caller looks (``list_deployments``) before trying again.
        """
        call = Call(
            "POST",
            DEPLOYMENT + "/retry",
            self._account(project_name=project, deployment_id=deployment_id),
            idempotent=False,
        )
        return Deployment.from_json(await self._object(call))

    async def rollback_deployment(self, project: str, deployment_id: str) -> Deployment:
        """``POST .../deployments/{id}/rollback``: point production at an earlier deployment.

        Idempotent (rolling back to the same deployment twice leaves the same state), so it is
        retried like a read.

        Raises:
            PermanentError: the target is not a successful production deployment.
        """
        call = Call(
            "POST",
            DEPLOYMENT + "/rollback",
            self._account(project_name=project, deployment_id=deployment_id),
        )
        return Deployment.from_json(await self._object(call))

    async def create_deployment(
        self,
        project: str,
        *,
        files: Mapping[str, bytes],
        branch: str,
        commit_hash: str,
        commit_message: str,
        commit_dirty: bool = False,
        manifest: Mapping[str, str] | None = None,
        content_types: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Create a deployment by Direct Upload (CONTRACT.md §3.4).

        Steps: ``GET upload-token``; ``POST /pages/assets/check-missing`` with every asset hash;
        ``POST /pages/assets/upload`` of the missing files (base64, at most 2,000 files and
        40 MiB per request, 3 at a time); ``POST /pages/assets/upsert-hashes``; then
        ``POST .../deployments`` with the multipart form (``manifest``, ``branch``,
        ``commit_hash``, ``commit_message``, ``commit_dirty`` and the special root files
        ``_headers``, ``_redirects``, ``_routes.json``, ``_worker.js`` as file parts). The
        asset calls use the upload JWT, are idempotent and are retried; an expired JWT
        (8000013) is fetched again once. The final create is not idempotent: after an unknown
        outcome the client lists the project's deployments for one whose ``commit_hash`` and
        ``commit_message`` equal these (the tag's publish id makes that unique) before sending
        it again.

        Args:
            project: the Pages project name.
            files: relative POSIX path (``about/index.html``) to bytes.
            branch: the production branch for production, another name for a preview.
            commit_hash: the spec commit (see the tag format in ``cloudflare_models``).
            commit_message: ``DeploymentTag.commit_message()``.
            commit_dirty: the ``commit_dirty`` form field.
            manifest: precomputed ``{"/path": hash}`` (``BuildOutput.manifest``); computed
                with ``pages_asset_hash`` when None.
            content_types: path to MIME type (``BuildOutput.content_types``); guessed when
                absent.

        Returns:
            The new deployment (in progress; poll ``get_deployment`` for its stages).

        Raises:
            ValueError: too many files or a file over 25 MiB (checked before any request).
        """
        assets = {p: data for p, data in files.items() if p not in SPECIAL_FILES}
        specials = {p: data for p, data in files.items() if p in SPECIAL_FILES}
        if len(assets) > MAX_MANIFEST_ENTRIES:
            raise ValueError(f"{len(assets)} files exceed the {MAX_MANIFEST_ENTRIES} limit")
        for path, data in files.items():
            if len(data) > MAX_ASSET_BYTES:
                raise ValueError(f"{path} is larger than 25 MiB")
        hashes: dict[str, str] = {}
        for path, data in assets.items():
            given = manifest.get("/" + path) if manifest is not None else None
            hashes[path] = given if given else pages_asset_hash(data, path)
        types = dict(content_types or {})
        await self._upload_assets(project, assets, hashes, types)

        full_manifest = {"/" + path: digest for path, digest in hashes.items()}
        parts: list[FormPart] = [
            ("manifest", (None, _compact_json(full_manifest).encode(), None)),
            ("branch", (None, branch.encode(), None)),
            ("commit_hash", (None, commit_hash.encode(), None)),
            ("commit_message", (None, commit_message.encode(), None)),
            ("commit_dirty", (None, b"true" if commit_dirty else b"false", None)),
        ]
        for path in sorted(specials):
            mime = "application/javascript" if path == "_worker.js" else "text/plain"
            parts.append((path, (path, specials[path], mime)))
        call = Call(
            "POST",
            DEPLOYMENTS,
            self._account(project_name=project),
            multipart=parts,
            idempotent=False,
        )

        def is_ours(item: dict[str, Any]) -> bool:
            found = Deployment.from_json(item)
            return found.commit_message == commit_message and found.commit_hash == commit_hash

        async def find() -> Deployment | None:
            items = await self._paginate(
                DEPLOYMENTS,
                self._account(project_name=project),
                {},
                per_page=None,
                total_count_applies=False,
                stop_when=is_ours,
            )
            return next((Deployment.from_json(i) for i in items if is_ours(i)), None)

        return await self._create_or_find(call, Deployment.from_json, find)

    async def _upload_token(self, project: str) -> str:
        call = Call("GET", UPLOAD_TOKEN, self._account(project_name=project))
        result = await self._object(call)
        jwt = result.get("jwt")
        if not isinstance(jwt, str) or not jwt:
            raise self._malformed(call, "no upload jwt")
        return jwt

    async def _upload_assets(
        self,
        project: str,
        assets: Mapping[str, bytes],
        hashes: Mapping[str, str],
        types: Mapping[str, str],
    ) -> None:
        """Steps 1-4 of Direct Upload: token, check-missing, upload, upsert-hashes."""
        by_hash: dict[str, tuple[str, bytes]] = {}
        for path, data in assets.items():
            by_hash.setdefault(hashes[path], (path, data))
        every_hash = sorted(by_hash)
        if not every_hash:
            return
        jwt = await self._upload_token(project)
        token_box = [jwt]

        async def with_jwt(make: Callable[[str], Call]) -> Any:
            try:
                return await self._result(make(token_box[0]))
            except UploadTokenExpiredError:
                token_box[0] = await self._upload_token(project)
                return await self._result(make(token_box[0]))

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        missing_result = await with_jwt(
            lambda t: Call(
                "POST", ASSETS_CHECK_MISSING, json={"hashes": every_hash}, headers=bearer(t)
            )
        )
        missing = (
            [h for h in missing_result if isinstance(h, str) and h in by_hash]
            if isinstance(missing_result, list)
            else list(every_hash)
        )

        batches: list[list[dict[str, Any]]] = []
        batch: list[dict[str, Any]] = []
        size = 0
        for digest in missing:
            path, data = by_hash[digest]
            encoded = base64.b64encode(data).decode("ascii")
            if batch and (
                len(batch) >= UPLOAD_BATCH_FILES or size + len(encoded) > UPLOAD_BATCH_BYTES
            ):
                batches.append(batch)
                batch, size = [], 0
            mime = types.get(path) or mimetypes.guess_type(path)[0] or "application/octet-stream"
            batch.append(
                {"key": digest, "value": encoded, "metadata": {"contentType": mime}, "base64": True}
            )
            size += len(encoded)
        if batch:
            batches.append(batch)

        limit = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def upload(items: list[dict[str, Any]]) -> None:
            async with limit:
                await with_jwt(lambda t: Call("POST", ASSETS_UPLOAD, json=items, headers=bearer(t)))

        failure: Exception | None = None
        try:
            async with asyncio.TaskGroup() as group:  # a failure cancels the other uploads
                for items in batches:
                    group.create_task(upload(items))
        except ExceptionGroup as failed:
            failure = _first_error(failed)
        if failure is not None:
            raise failure  # our own error type, with its original cause kept
        await with_jwt(
            lambda t: Call("POST", ASSETS_UPSERT, json={"hashes": every_hash}, headers=bearer(t))
        )

    # ------------------------------------------------------------------------- custom hostnames

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
        items = await self._paginate(
            HOSTNAMES,
            self._zone(),
            params,
            per_page=per_page,
            total_count_applies=not params,  # total_count ignores every filter
        )
        return [CustomHostname.from_json(item) for item in items]

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
            return await self._create_or_find(call, CustomHostname.from_json, find)
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

    # ------------------------------------------------------------------------- D1

    async def d1_query(
        self, database_id: str, sql: str, params: Sequence[SqlValue] = ()
    ) -> list[D1Result]:
        """``POST /accounts/{a}/d1/database/{id}/query``: one result per statement.

        ``params`` are strings in the contract (CONTRACT.md §6); when every value is a string
        they are sent as bound parameters, otherwise every value is inlined into ``sql`` as an
        SQLite literal (``NULL``, ``42``, ``X'00ff'``) and no ``params`` are sent, which means
        the same on both readings. Only read-only SQL (every statement a ``SELECT`` or
        ``EXPLAIN``) is retried after an unknown outcome; writes only when not applied.

        Raises:
            PermanentError: invalid SQL (HTTP 400, 7500: the message ends in the SQLite code).
            NotFoundError: no such database (7404).
        """
        values = list(params)
        if all(isinstance(v, str) for v in values):
            body: dict[str, Any] = {"sql": sql, "params": values}
        else:
            body = {"sql": inline_params(sql, values), "params": []}
        call = Call(
            "POST",
            D1_QUERY,
            self._account(database_id=database_id),
            json=body,
            idempotent=_read_only(sql),
        )
        result = await self._result(call)
        if not isinstance(result, list):
            raise self._malformed(call, "result is not a list")
        return [D1Result.from_json(item) for item in result if isinstance(item, dict)]

    async def worker_versions(self, script: str) -> dict[int, str]:
        """``GET .../workers/scripts/{name}/versions?deployable=true``: number -> version id."""
        call = Call(
            "GET",
            WORKER_VERSIONS,
            self._account(script_name=script),
            params={"deployable": "true"},
            lane=Lane.SWEEP,
        )
        items = (await self._object(call)).get("items")
        if not isinstance(items, list):
            raise self._malformed(call, "no items")
        versions: dict[int, str] = {}
        for item in items:
            number, version_id = item.get("number"), item.get("id")
            if isinstance(number, int | float) and isinstance(version_id, str):
                versions[int(number)] = version_id
        return versions

    async def worker_serving(self, script: str) -> tuple[tuple[str, float], ...]:
        """``GET .../deployments``: the newest deployment's ``(version id, percentage)``."""
        call = Call("GET", WORKER_DEPLOYMENTS, self._account(script_name=script), lane=Lane.SWEEP)
        deployments = (await self._object(call)).get("deployments")
        if not isinstance(deployments, list):
            raise self._malformed(call, "no deployments")
        if not deployments:
            return ()
        return tuple(
            (str(item["version_id"]), float(item["percentage"]))
            for item in deployments[0].get("versions", [])
        )

    async def deploy_worker(
        self, script: str, versions: Sequence[tuple[str, float]], message: str
    ) -> str:
        """``POST .../deployments``: serve ``versions`` (id, percentage); the deployment id.

        Idempotent in effect: deploying the same split twice serves the same split.
        """
        call = Call(
            "POST",
            WORKER_DEPLOYMENTS,
            self._account(script_name=script),
            json={
                "strategy": "percentage",
                "versions": [{"version_id": v, "percentage": p} for v, p in versions],
                "annotations": {"workers/message": message[:100]},
            },
            lane=Lane.URGENT,
        )
        return str((await self._object(call)).get("id", ""))

    async def d1_bookmark(self, database_id: str) -> str:
        """``GET .../d1/database/{id}/time_travel/bookmark``: the database's current bookmark."""
        call = Call("GET", D1_BOOKMARK, self._account(database_id=database_id))
        bookmark = (await self._object(call)).get("bookmark")
        if not isinstance(bookmark, str) or not bookmark:
            raise self._malformed(call, "no bookmark")
        return bookmark

    async def d1_restore(self, database_id: str, bookmark: str) -> dict[str, Any]:
        """``POST .../time_travel/restore?bookmark=``: the database back to ``bookmark``.

        Idempotent in effect (the database ends at ``bookmark`` however often it is sent).
        Returns the answer: ``bookmark`` (after), ``previous_bookmark`` (before), ``message``.
        """
        call = Call(
            "POST",
            D1_RESTORE,
            self._account(database_id=database_id),
            params={"bookmark": bookmark},
            lane=Lane.URGENT,
        )
        return await self._object(call)


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


def _first_error(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first leaf exception of a task group's failure (our own error types)."""
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


def _compact_json(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def _read_only(sql: str) -> bool:
    """Whether every statement of ``sql`` only reads (``SELECT``/``EXPLAIN``)."""
    statements = split_sql(sql)
    if not statements:
        return False
    for statement in statements:
        words = strip_comments(statement).split(None, 1)
        if not words or words[0].upper() not in _READ_ONLY_SQL:
            return False
    return True
