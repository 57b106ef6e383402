"""Workers versions and deployments of the Cloudflare simulator, and what each version answers.

Called by :mod:`reconciler.sandbox.cloudflare` (its lock held) for
``/accounts/{account_id}/workers/scripts/{script_name}/versions…`` and ``…/deployments``.
Shapes follow the official SDK (``cloudflare/types/workers/scripts/``): a version list is
``{"items": [VersionListResponse]}`` (``V4PagePagination``), one version is
``VersionGetResponse``, a deployment is ``Deployment`` and the deployment list is
``DeploymentListResponse`` (``{"deployments": [...]}``, newest first: the first one serves).

A deployment splits traffic by ``strategy: "percentage"`` between one or two existing versions
whose percentages total 100 (Cloudflare's gradual deployments allow at most two); anything else
is refused with nothing changed: an unknown version 404 (10220), a bad split 400 (10221). The
codes are the sandbox's choice; Cloudflare does not document them.

The sandbox seeds the platform's API Worker ``site-builder-api-production`` with three
versions, the second deployed at 100 %. Each version has a sandbox-only *health*: the HTTP
status its ``/healthz`` answers (the third answers 500: runbook 6's broken deploy). Visitors
reach the deployed versions at ``GET /__workers/{script}/{path}`` (traffic split by the
deployment's percentages, deterministically), and ``POST /__sandbox/workers/{script}/versions/
{version_id}/health`` with ``{"status": N}`` changes what a version answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.cloudflare_common import (
    ApiError,
    IdSource,
    api_routes,
    first_or_refuse,
    iso,
    require,
    success,
)
from reconciler.sandbox.cloudflare_workers import SCRIPT_NOT_FOUND
from reconciler.sandbox.pipeline import Call, Outcome

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim

API_WORKER = "site-builder-api-production"
VERSION_NOT_FOUND = 10220  # sandbox's choice
SPLIT_INVALID = 10221  # sandbox's choice
MAX_VERSIONS_PER_DEPLOYMENT = 2
AUTHOR = "platform@sitebuilder.example"
SEED_VERSIONS = (("api 1.0.0", 200), ("api 1.1.0", 200), ("api 1.2.0", 500))


@dataclass(slots=True)
class Version:
    """One immutable version of a Worker."""

    id: str
    number: int
    created: float
    message: str
    etag: str
    health: int = 200  # sandbox only: the status /healthz answers

    def list_json(self) -> dict[str, Any]:
        """The SDK's ``VersionListResponse``."""
        return {"id": self.id, "number": self.number, "metadata": self._metadata()}

    def get_json(self) -> dict[str, Any]:
        """The SDK's ``VersionGetResponse``."""
        return {
            **self.list_json(),
            "resources": {
                "script": {"etag": self.etag, "handlers": ["fetch"], "last_deployed_from": "api"},
                "script_runtime": {
                    "compatibility_date": "2024-09-23",
                    "compatibility_flags": [],
                    "usage_model": "standard",
                    "limits": {"cpu_ms": 50},
                },
            },
        }

    def _metadata(self) -> dict[str, Any]:
        return {
            "author_email": AUTHOR,
            "author_id": "0" * 32,
            "created_on": iso(self.created),
            "modified_on": iso(self.created),
            "hasPreview": False,
            "source": "wrangler",
        }


@dataclass(slots=True)
class Deployment:
    """Which versions serve a Worker's traffic, and how much of it each."""

    id: str
    created: float
    split: tuple[tuple[str, float], ...]  # (version id, percentage)
    message: str | None

    def as_json(self) -> dict[str, Any]:
        """The SDK's ``Deployment``."""
        out: dict[str, Any] = {
            "id": self.id,
            "created_on": iso(self.created),
            "source": "api",
            "strategy": "percentage",
            "versions": [{"version_id": v, "percentage": p} for v, p in self.split],
            "author_email": AUTHOR,
            "annotations": {"workers/triggered_by": "deployment"},
        }
        if self.message is not None:
            out["annotations"]["workers/message"] = self.message
        return out


@dataclass(slots=True)
class VersionedScript:
    """A Worker's versions (oldest first) and deployments (oldest first)."""

    name: str
    versions: list[Version] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    served: int = 0  # requests served so far, to split traffic deterministically


@dataclass(slots=True)
class VersionsStore:
    """Every Worker's versions and deployments."""

    ids: IdSource
    scripts: dict[str, VersionedScript] = field(default_factory=dict)

    @classmethod
    def seeded(cls, seed: int, now: float) -> VersionsStore:
        """The API Worker with three versions, the second deployed at 100 %."""
        store = cls(IdSource(seed))
        script = VersionedScript(API_WORKER)
        for number, (message, health) in enumerate(SEED_VERSIONS, start=1):
            store.add_version(script, message, now - 3600 * (4 - number), health)
        second = script.versions[1]
        script.deployments.append(
            Deployment(store.ids.uuid(), now - 1800, ((second.id, 100.0),), "seed")
        )
        store.scripts[script.name] = script
        return store

    def add_version(self, script: VersionedScript, message: str, now: float, health: int) -> None:
        """A new version of ``script`` (numbers count up from 1)."""
        number = len(script.versions) + 1
        etag = hashlib.sha256(f"{script.name}:{number}:{message}".encode()).hexdigest()
        script.versions.append(Version(self.ids.uuid(), number, now, message, etag, health))

    def script(self, name: str) -> VersionedScript:
        """One Worker or 404 10007."""
        found = self.scripts.get(name)
        if found is None:
            raise ApiError(404, SCRIPT_NOT_FOUND, "This Worker does not exist on your account.")
        return found

    @staticmethod
    def version(script: VersionedScript, version_id: str) -> Version:
        """One version of ``script`` or 404."""
        missing = ApiError(404, VERSION_NOT_FOUND, f"Version {version_id} does not exist.")
        return first_or_refuse(script.versions, lambda version: version.id == version_id, missing)

    def serve(self, script: VersionedScript) -> Version | None:
        """The version the next visitor request reaches under the current deployment."""
        if not script.deployments:
            return None
        split = script.deployments[-1].split
        slot = script.served % 100
        script.served += 1
        for version_id, percentage in split:
            if slot < percentage:
                return self.version(script, version_id)
            slot -= int(percentage)
        return self.version(script, split[-1][0])


# ---- API handlers ---------------------------------------------------------------------------


def _script(sim: CloudflareSim, call: Call) -> VersionedScript:
    require(call.params.get("account_id"), sim.config.account_id, call)
    store: VersionsStore = sim.worker_versions
    return store.script(call.params["script"])


def list_versions(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/versions`` (newest first; ``page``/``per_page``; ``deployable`` lists all)."""
    script = _script(sim, call)
    newest = [v.list_json() for v in reversed(script.versions)]
    page = max(int(call.query.get("page", "1") or 1), 1)
    per_page = max(min(int(call.query.get("per_page", "10") or 10), 100), 1)
    if call.query.get("deployable") == "true":
        chunk, page, per_page = newest, 1, len(newest)
    else:
        chunk = newest[(page - 1) * per_page : page * per_page]
    info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(newest)}
    return Outcome(200, {**success({"items": chunk}), "result_info": info})


def get_version(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/versions/{version_id}``."""
    script = _script(sim, call)
    version = sim.worker_versions.version(script, call.params["version"])
    return Outcome(200, success(version.get_json()))


def list_deployments(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/deployments``: newest first, the first one is the one serving."""
    script = _script(sim, call)
    return Outcome(
        200, success({"deployments": [d.as_json() for d in reversed(script.deployments)]})
    )


def _split(
    store: VersionsStore, script: VersionedScript, body: Any
) -> tuple[tuple[str, float], ...]:
    if not isinstance(body, dict) or body.get("strategy") != "percentage":
        raise ApiError(400, SPLIT_INVALID, "strategy must be 'percentage'.")
    versions = body.get("versions")
    if not isinstance(versions, list) or not 1 <= len(versions) <= MAX_VERSIONS_PER_DEPLOYMENT:
        raise ApiError(400, SPLIT_INVALID, "A deployment names one or two versions.")
    split: list[tuple[str, float]] = []
    for item in versions:
        if not isinstance(item, dict) or not isinstance(item.get("version_id"), str):
            raise ApiError(400, SPLIT_INVALID, "Each version needs a version_id.")
        percentage = item.get("percentage")
        if not isinstance(percentage, int | float) or not 0 <= percentage <= 100:
            raise ApiError(400, SPLIT_INVALID, "percentage must be a number from 0 to 100.")
        store.version(script, item["version_id"])
        split.append((item["version_id"], float(percentage)))
    if len({v for v, _ in split}) != len(split) or sum(p for _, p in split) != 100:
        raise ApiError(400, SPLIT_INVALID, "Percentages of distinct versions must total 100.")
    return tuple(split)


def create_deployment(sim: CloudflareSim, call: Call) -> Outcome:
    """``POST …/deployments``: ``{strategy, versions: [{version_id, percentage}], annotations}``."""
    script = _script(sim, call)
    store: VersionsStore = sim.worker_versions
    split = _split(store, script, call.json)
    annotations = call.json.get("annotations") if isinstance(call.json, dict) else None
    message = annotations.get("workers/message") if isinstance(annotations, dict) else None
    deployment = Deployment(
        store.ids.uuid(), sim.clock.now(), split, message if isinstance(message, str) else None
    )
    script.deployments.append(deployment)
    script.served = 0  # a new deployment's traffic split starts with its first version
    return Outcome(200, success(deployment.as_json()))


_T1 = "/accounts/{account_id}/workers/scripts/{script_name}"

VERSION_ROUTES: tuple[tuple[str, str, str, Any], ...] = api_routes(
    {
        _T1 + "/versions": {"GET": list_versions},
        _T1 + "/versions/{version_id}": {"GET": get_version},
        _T1 + "/deployments": {"GET": list_deployments, "POST": create_deployment},
    }
)
"""``(method, path regex, path template, handler)`` for the simulator's router."""


# ---- what visitors reach ----------------------------------------------------------------------


def worker_routes(sim: CloudflareSim) -> list[Route]:
    """``/__workers/{script}/{path}`` (visitors) and the sandbox's health control."""

    async def visit(request: Request) -> Response:
        with sim.lock:
            store: VersionsStore = sim.worker_versions
            script = store.scripts.get(request.path_params["script"])
            version = store.serve(script) if script is not None else None
        if version is None:
            return JSONResponse({"error": "no deployment serves this Worker"}, status_code=404)
        path = "/" + request.path_params.get("path", "")
        status = version.health if path == "/healthz" else 200
        body = {"version_id": version.id, "number": version.number, "path": path}
        headers = {"x-worker-version": version.id}
        return JSONResponse(body, status_code=status, headers=headers)

    async def set_health(request: Request) -> Response:
        body = await request.json()
        with sim.lock:
            store: VersionsStore = sim.worker_versions
            script = store.scripts.get(request.path_params["script"])
            status = body.get("status") if isinstance(body, dict) else None
            if script is None or not isinstance(status, int):
                return JSONResponse({"error": "no such Worker, or no status"}, status_code=400)
            try:
                store.version(script, request.path_params["version"]).health = status
            except ApiError:
                return JSONResponse({"error": "no such version"}, status_code=404)
        return JSONResponse({"ok": True})

    return [
        Route("/__workers/{script}/{path:path}", visit, methods=["GET", "HEAD"]),
        Route(
            "/__sandbox/workers/{script}/versions/{version}/health", set_health, methods=["POST"]
        ),
    ]
