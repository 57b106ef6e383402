"""Cloudflare Pages calls: projects, deployments (list, read, retry, roll back) and Direct Upload.

Who calls it: :class:`reconciler.providers.cloudflare.CloudflareClient` inherits
:class:`PagesCalls`. What it calls: the plumbing of :class:`~.cloudflare_api.CloudflareApi` and
the typed values of :mod:`reconciler.providers.cloudflare_models`.

A deployment is created by Direct Upload (CONTRACT.md §3.4): the upload token, the asset
check, the uploads of the missing files, the hash upsert, then the non-idempotent create,
which after an unknown outcome looks for its own deployment (by the tag's commit hash and
message) before being sent again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from reconciler.build.assethash import pages_asset_hash
from reconciler.providers.cloudflare_api import ACCOUNT, CloudflareApi
from reconciler.providers.cloudflare_errors import UploadTokenExpiredError
from reconciler.providers.cloudflare_models import Deployment, PagesProject
from reconciler.providers.http import Call, FormPart

__all__ = [
    "MAX_ASSET_BYTES",
    "MAX_MANIFEST_ENTRIES",
    "PROJECTS_PER_PAGE",
    "SPECIAL_FILES",
    "PagesCalls",
]

PROJECTS = ACCOUNT + "/pages/projects"
PROJECT = PROJECTS + "/{project_name}"
DEPLOYMENTS = PROJECT + "/deployments"
DEPLOYMENT = DEPLOYMENTS + "/{deployment_id}"
UPLOAD_TOKEN = PROJECT + "/upload-token"
ASSETS_CHECK_MISSING = "/pages/assets/check-missing"
ASSETS_UPLOAD = "/pages/assets/upload"
ASSETS_UPSERT = "/pages/assets/upsert-hashes"

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


class PagesCalls(CloudflareApi):
    """The Pages endpoints of one account (a part of the Cloudflare client)."""

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
        found = await self._paginate(
            PROJECTS,
            self._account(),
            {},
            parse=PagesProject.from_json,
            per_page=PROJECTS_PER_PAGE,
            total_count_applies=True,
        )
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
        return await self._paginate(
            DEPLOYMENTS,
            self._account(project_name=project),
            params,
            parse=Deployment.from_json,
            per_page=None,
            total_count_applies=False,
        )

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
        hashes = _asset_hashes(files, assets, manifest)
        await self._upload_assets(project, assets, hashes, dict(content_types or {}))
        fields = {
            "manifest": _compact_json({"/" + path: digest for path, digest in hashes.items()}),
            "branch": branch,
            "commit_hash": commit_hash,
            "commit_message": commit_message,
            "commit_dirty": "true" if commit_dirty else "false",
        }
        call = Call(
            "POST",
            DEPLOYMENTS,
            self._account(project_name=project),
            multipart=_deployment_form(fields, specials),
            idempotent=False,
        )

        async def find() -> Deployment | None:
            return await self._find_deployment(project, commit_hash, commit_message)

        return await self.create_or_find(call, Deployment.from_json, find)

    async def _find_deployment(
        self, project: str, commit_hash: str, commit_message: str
    ) -> Deployment | None:
        """The deployment a create of this commit hash and message made, if any."""

        def is_ours(found: Deployment) -> bool:
            return found.commit_message == commit_message and found.commit_hash == commit_hash

        items = await self._paginate(
            DEPLOYMENTS,
            self._account(project_name=project),
            {},
            parse=Deployment.from_json,
            per_page=None,
            total_count_applies=False,
            stop_when=is_ours,
        )
        return next((found for found in items if is_ours(found)), None)

    async def _upload_token(self, project: str) -> str:
        call = Call("GET", UPLOAD_TOKEN, self._account(project_name=project))
        return await self._text(call, "jwt", "no upload jwt")

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

        batches = _upload_batches(missing, by_hash, types)

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


def _asset_hashes(
    files: Mapping[str, bytes], assets: Mapping[str, bytes], manifest: Mapping[str, str] | None
) -> dict[str, str]:
    """Each asset's hash (the given manifest's, else computed), after the size limits.

    Raises:
        ValueError: too many files or a file over 25 MiB (checked before any request).
    """
    if len(assets) > MAX_MANIFEST_ENTRIES:
        raise ValueError(f"{len(assets)} files exceed the {MAX_MANIFEST_ENTRIES} limit")
    for path, data in files.items():
        if len(data) > MAX_ASSET_BYTES:
            raise ValueError(f"{path} is larger than 25 MiB")
    hashes: dict[str, str] = {}
    for path, data in assets.items():
        given = manifest.get("/" + path) if manifest is not None else None
        hashes[path] = given if given else pages_asset_hash(data, path)
    return hashes


def _deployment_form(fields: Mapping[str, str], specials: Mapping[str, bytes]) -> list[FormPart]:
    """The create's multipart form: the text fields, then the special root files."""
    parts: list[FormPart] = [(name, (None, value.encode(), None)) for name, value in fields.items()]
    for path in sorted(specials):
        mime = "application/javascript" if path == "_worker.js" else "text/plain"
        parts.append((path, (path, specials[path], mime)))
    return parts


def _upload_batches(
    missing: Sequence[str], by_hash: Mapping[str, tuple[str, bytes]], types: Mapping[str, str]
) -> list[list[dict[str, Any]]]:
    """The missing files as upload bodies: base64, at most 2,000 files and 40 MiB each."""
    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for digest in missing:
        path, data = by_hash[digest]
        encoded = base64.b64encode(data).decode("ascii")
        if batch and (len(batch) >= UPLOAD_BATCH_FILES or size + len(encoded) > UPLOAD_BATCH_BYTES):
            batches.append(batch)
            batch, size = [], 0
        mime = types.get(path) or mimetypes.guess_type(path)[0] or "application/octet-stream"
        batch.append(
            {"key": digest, "value": encoded, "metadata": {"contentType": mime}, "base64": True}
        )
        size += len(encoded)
    if batch:
        batches.append(batch)
    return batches


def _first_error(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first leaf exception of a task group's failure (our own error types)."""
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


def _compact_json(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
