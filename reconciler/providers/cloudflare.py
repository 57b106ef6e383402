"""The Cloudflare API adapter: Pages, custom hostnames, cache purge, D1 and Workers, over httpx.

Who calls it: the wiring builds one :class:`CloudflareClient` per lane from
:class:`~reconciler.settings.CloudflareSettings`, all sharing one
:class:`~reconciler.providers.ratelimit.TokenBucket` for the token; observers read through it,
executors change the world through it, ``providers/d1.py``'s ``D1HttpDatabase`` runs SQL
through :meth:`CloudflareClient.d1_query`, and the contract tests drive every method.
What it calls: :class:`reconciler.providers.http.HttpApi` (bucket, retries, network errors),
:func:`reconciler.providers.cloudflare_errors.check_envelope` (envelope and error codes) and
the typed values of :mod:`reconciler.providers.cloudflare_models`, and what the clients of one
account share (:mod:`reconciler.providers.shared_calls`: the project memo, batched purges).
The client is assembled from one part per job: the plumbing (``cloudflare_api.py``), Pages
(``cloudflare_pages.py``), the zone's custom hostnames and purges (``cloudflare_zone.py``);
the D1 and Workers calls are here.

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
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from reconciler.core.lane import Lane
from reconciler.providers.closing import AsyncClosing
from reconciler.providers.cloudflare_api import ACCOUNT
from reconciler.providers.cloudflare_errors import (
    PROVIDER,
    DuplicateHostnameError,
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
from reconciler.providers.cloudflare_pages import (
    MAX_ASSET_BYTES,
    MAX_MANIFEST_ENTRIES,
    PROJECTS_PER_PAGE,
    SPECIAL_FILES,
    PagesCalls,
)
from reconciler.providers.cloudflare_zone import HOSTNAMES_PER_PAGE, PURGE_CHUNK, ZoneCalls
from reconciler.providers.d1 import D1Result, SqlValue, inline_params, split_sql, strip_comments
from reconciler.providers.http import DEFAULT_RETRY, Call, HttpApi
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

D1_DATABASE = ACCOUNT + "/d1/database/{database_id}"
D1_QUERY = D1_DATABASE + "/query"
D1_BOOKMARK = D1_DATABASE + "/time_travel/bookmark"
D1_RESTORE = D1_DATABASE + "/time_travel/restore"
WORKER = ACCOUNT + "/workers/scripts/{script_name}"
WORKER_VERSIONS = WORKER + "/versions"
WORKER_DEPLOYMENTS = WORKER + "/deployments"
_READ_ONLY_SQL = frozenset({"SELECT", "EXPLAIN"})


class CloudflareClient(PagesCalls, ZoneCalls, AsyncClosing):
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

    # ------------------------------------------------------------------------- D1 and Workers

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
        items = await self._list(call, "items", "no items")
        versions: dict[int, str] = {}
        for item in items:
            number, version_id = item.get("number"), item.get("id")
            if isinstance(number, int | float) and isinstance(version_id, str):
                versions[int(number)] = version_id
        return versions

    async def worker_serving(self, script: str) -> tuple[tuple[str, float], ...]:
        """``GET .../deployments``: the newest deployment's ``(version id, percentage)``."""
        call = Call("GET", WORKER_DEPLOYMENTS, self._account(script_name=script), lane=Lane.SWEEP)
        deployments = await self._list(call, "deployments", "no deployments")
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
        return await self._text(call, "bookmark", "no bookmark")

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
