"""Pages state of the Cloudflare simulator: the account's projects, deployments and rollbacks.

Called by :mod:`reconciler.sandbox.cloudflare` (HTTP routes and control endpoints) with the
simulator's lock held; reads time only from the values it is given. Shapes follow
``contracts/cloudflare/CONTRACT.md`` §3. The values it holds (projects, deployments and their
stages) are :mod:`reconciler.sandbox.pages_model`'s.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from reconciler.sandbox.cloudflare_common import ApiError, IdSource, iso
from reconciler.sandbox.pages_model import NORMAL, STAGES, Behaviour, Deployment, Mode, Project

__all__ = ["NORMAL", "STAGES", "Behaviour", "Deployment", "Mode", "PagesStore", "Project"]

PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MAX_MANIFEST_ENTRIES = 20_000

# Error codes. 8000007 and 8000035 come from the contract (§1.3); the others are UNCONFIRMED
# there and chosen by the sandbox (documented in docs/sandbox.md).
PROJECT_NOT_FOUND = 8000007
ALIASED_DELETE = 8000035
UPLOAD_JWT_EXPIRED = 8000013
DEPLOYMENT_NOT_FOUND = 8000009
BAD_DEPLOYMENT_REQUEST = 8000096
ROLLBACK_REFUSED = 8000069


BUILD_CONFIG: dict[str, Any] = {
    "build_caching": False,
    "build_command": "",
    "destination_dir": "",
    "root_dir": "",
    "web_analytics_tag": None,
    "web_analytics_token": None,
}


def _deployment_config() -> dict[str, Any]:
    """One ``deployment_configs`` entry as the SDK's ``DeploymentConfigsProduction`` types it."""
    return {
        "always_use_latest_compatibility_date": False,
        "build_image_major_version": 3,
        "compatibility_date": "2024-01-01",
        "compatibility_flags": [],
        "env_vars": {},
        "fail_open": True,
        "usage_model": "standard",
        "kv_namespaces": {},
        "d1_databases": {},
        "r2_buckets": {},
        "services": {},
    }


class PagesStore:
    """Every Pages project of the simulated account."""

    def __init__(
        self,
        ids: IdSource,
        *,
        stage_seconds: float,
        upload_jwt_ttl: float,
        canonical_after_rollback: str = "live",
    ) -> None:
        """Start with no projects.

        ``canonical_after_rollback``: ``"live"`` makes a project's ``canonical_deployment`` the
        deployment serving production (a rollback target after a rollback); ``"latest"`` makes
        it the most recently created successful production deployment, whatever was rolled
        back to. Which one Cloudflare does is unconfirmed (CONTRACT.md §9 item 3).
        """
        self._ids = ids
        self.stage_seconds = stage_seconds
        self.upload_jwt_ttl = upload_jwt_ttl
        self.canonical_after_rollback = canonical_after_rollback
        self.projects: dict[str, Project] = {}

    # ---- projects -------------------------------------------------------------------------

    def create_project(self, name: str, now: float, *, production_branch: str = "main") -> Project:
        """Create a project; ValueError when the name is invalid or taken."""
        if not PROJECT_NAME.match(name):
            raise ValueError(f"project name {name!r} must match {PROJECT_NAME.pattern}")
        if name in self.projects:
            raise ValueError(f"project {name!r} already exists")
        project = Project(
            id=self._ids.uuid(), name=name, production_branch=production_branch, created=now
        )
        self.projects[name] = project
        return project

    def project(self, name: str) -> Project:
        """The project ``name`` or the contract's 8000007 not-found error."""
        project = self.projects.get(name)
        if project is None:
            raise ApiError(
                404,
                PROJECT_NOT_FOUND,
                "Project not found. The specified project name does not match any of your "
                "existing projects.",
            )
        return project

    def project_json(self, project: Project, now: float) -> dict[str, Any]:
        """The Project object (CONTRACT.md §3.5)."""
        canonical = self.canonical(project, now)
        latest = list(project.deployments.values())[-1] if project.deployments else None
        script = f"pages-worker--{project.id.replace('-', '')[:20]}"
        return {
            "id": project.id,
            "name": project.name,
            "subdomain": project.subdomain,
            "domains": [project.subdomain],
            "production_branch": project.production_branch,
            "created_on": iso(project.created),
            "build_config": dict(BUILD_CONFIG),
            "deployment_configs": {
                "preview": _deployment_config(),
                "production": _deployment_config(),
            },
            "framework": "",
            "framework_version": "",
            "preview_script_name": f"{script}-preview",
            "production_script_name": f"{script}-production",
            "uses_functions": False,
            "canonical_deployment": self.deployment_json(canonical, now) if canonical else None,
            "latest_deployment": self.deployment_json(latest, now) if latest else None,
        }

    def canonical(self, project: Project, now: float) -> Deployment | None:
        """The project's ``canonical_deployment`` under the configured reading."""
        production = [d for d in project.deployments.values() if d.environment == "production"]
        if self.canonical_after_rollback == "latest":
            done = [d for d in production if d.is_success(now)]
            return done[-1] if done else (production[-1] if production else None)
        return project.live(now) or (production[-1] if production else None)

    # ---- deployments ----------------------------------------------------------------------

    def deployment(self, project: Project, deployment_id: str) -> Deployment:
        """One deployment or a 404."""
        dep = project.deployments.get(deployment_id)
        if dep is None:
            raise ApiError(404, DEPLOYMENT_NOT_FOUND, "Deployment not found.")
        return dep

    def deployment_json(self, dep: Deployment, now: float) -> dict[str, Any]:
        """The Deployment object (CONTRACT.md §3.2)."""
        stages = dep.stage_list(now)
        latest = next((s for s in reversed(stages) if s["status"] != "idle"), stages[0])
        aliases = None
        if dep.environment == "preview":
            slug = re.sub(r"[^a-z0-9-]", "-", dep.branch.lower())[:28].strip("-") or "preview"
            aliases = [f"https://{slug}.{dep.project}.pages.dev"]
        project = self.projects[dep.project]
        # No "source": a Direct Upload deployment has no Git source (docs/contracts.md).
        return {
            "id": dep.id,
            "short_id": dep.short_id,
            "project_id": project.id,
            "project_name": dep.project,
            "environment": dep.environment,
            "url": f"https://{dep.short_id}.{dep.project}.pages.dev",
            "created_on": iso(dep.created),
            "modified_on": iso(dep.modified(now)),
            "aliases": aliases,
            "latest_stage": latest,
            "stages": stages,
            "deployment_trigger": {
                "type": "ad_hoc",
                "metadata": {
                    "branch": dep.branch,
                    "commit_hash": dep.commit_hash,
                    "commit_message": dep.commit_message,
                    "commit_dirty": dep.commit_dirty,
                },
            },
            "build_config": dict(BUILD_CONFIG),
            "env_vars": {},
            "is_skipped": False,
            "skip_reason": None,
            "uses_functions": False,
        }

    def list_deployments(self, project: Project, env: str | None, now: float) -> list[Deployment]:
        """Deployments newest first, optionally of one environment."""
        deps = [d for d in reversed(project.deployments.values())]
        if env is not None:
            deps = [d for d in deps if d.environment == env]
        return deps

    def create_deployment(
        self, project: Project, form: dict[str, str], files: list[str], now: float
    ) -> Deployment:
        """Create a Direct Upload deployment from the multipart form (CONTRACT.md §3.4)."""
        raw_manifest = form.get("manifest")
        if raw_manifest is None:
            raise ApiError(400, BAD_DEPLOYMENT_REQUEST, "A manifest is required for direct upload.")
        manifest = _parse_manifest(raw_manifest)
        branch = form.get("branch") or project.production_branch
        environment = "production" if branch == project.production_branch else "preview"
        if "_worker.js" in files and "_worker.bundle" in files:
            raise ApiError(
                400,
                BAD_DEPLOYMENT_REQUEST,
                "_worker.js and _worker.bundle cannot both be uploaded.",
            )
        dep = Deployment(
            id=self._ids.uuid(),
            project=project.name,
            environment=environment,
            branch=branch,
            commit_hash=form.get("commit_hash", ""),
            commit_message=form.get("commit_message", ""),
            commit_dirty=form.get("commit_dirty", "false") == "true",
            manifest=manifest,
            files=files,
            created=now,
            stage_seconds=self.stage_seconds,
            behaviour=project.next_behaviour(),
            missing_assets=sorted(set(manifest.values()) - project.assets),
        )
        project.deployments[dep.id] = dep
        return dep

    def retry(
        self, project: Project, deployment_id: str, now: float, *, new_id: bool
    ) -> Deployment:
        """Retry a deployment: a new deployment with the same inputs (or the same id restarted)."""
        old = self.deployment(project, deployment_id)
        if not new_id:
            old.created = now
            old.behaviour = project.next_behaviour()
            old.rolled_back_at = None
            return old
        dep = Deployment(
            id=self._ids.uuid(),
            project=project.name,
            environment=old.environment,
            branch=old.branch,
            commit_hash=old.commit_hash,
            commit_message=old.commit_message,
            commit_dirty=old.commit_dirty,
            manifest=dict(old.manifest),
            files=list(old.files),
            created=now,
            stage_seconds=self.stage_seconds,
            behaviour=project.next_behaviour(),
            missing_assets=list(old.missing_assets),
        )
        project.deployments[dep.id] = dep
        return dep

    def rollback(self, project: Project, deployment_id: str, now: float) -> Deployment:
        """Make a successful production deployment live again (CONTRACT.md §3.1)."""
        dep = self.deployment(project, deployment_id)
        if dep.environment != "production" or not dep.is_success(now):
            raise ApiError(
                400,
                ROLLBACK_REFUSED,
                "You can only rollback to successful builds on production.",
            )
        dep.rolled_back_at = now
        return dep

    def delete(self, project: Project, deployment_id: str, now: float, *, force: bool) -> None:
        """Delete a deployment; an aliased one needs ``force`` (8000035)."""
        dep = self.deployment(project, deployment_id)
        live = project.live(now)
        if live is not None and live.id == dep.id:
            raise ApiError(
                400,
                ALIASED_DELETE,
                "You cannot delete the live production deployment.",
            )
        if dep.environment == "preview" and not force:
            newest_for_branch = next(
                d
                for d in reversed(project.deployments.values())
                if d.environment == "preview" and d.branch == dep.branch
            )
            if newest_for_branch.id == dep.id:
                raise ApiError(
                    400,
                    ALIASED_DELETE,
                    "You cannot delete an aliased deployment without a ?force=true parameter "
                    "in the API request URL.",
                )
        del project.deployments[dep.id]

    # ---- direct-upload assets -----------------------------------------------------------------

    def store_assets(self, project: Project, items: list[dict[str, Any]]) -> None:
        """Keep uploaded files by hash: ``[{key, value, metadata: {contentType}, base64}]``."""
        for item in items:
            key = str(item["key"])
            value = item.get("value", "")
            data = b""
            if isinstance(value, str):
                data = base64.b64decode(value) if item.get("base64") else value.encode()
            meta = item.get("metadata")
            content_type = "application/octet-stream"
            if isinstance(meta, dict) and isinstance(meta.get("contentType"), str):
                content_type = meta["contentType"]
            project.assets.add(key)
            project.asset_bodies[key] = (data, content_type)

    def serve(
        self, project: Project, path: str, now: float, deployment_id: str | None = None
    ) -> tuple[int, bytes, str]:
        """What ``https://<project>.pages.dev<path>`` answers: ``(status, body, type)``.

        The production deployment that is live serves (or ``deployment_id``'s). Pages' own
        resolution: the exact file, then ``<path>.html``, then ``<path>/index.html``; an
        unknown path gets the nearest ``404.html`` with status 404, or, when the site has no
        ``404.html`` at all, ``/index.html`` with 200 (Pages' single-page-app default).
        """
        dep = project.deployments.get(deployment_id) if deployment_id else project.live(now)
        if dep is None:
            return 404, b"No deployment is live for this project.", "text/plain"
        clean = "/" + path.lstrip("/")
        for candidate in _candidates(clean):
            found = self._file(project, dep, candidate)
            if found is not None:
                return 200, found[0], found[1]
        parts = [p for p in clean.split("/")[:-1] if p]
        for depth in range(len(parts), -1, -1):
            page = "/" + "/".join([*parts[:depth], "404.html"]).lstrip("/")
            found = self._file(project, dep, page)
            if found is not None:
                return 404, found[0], found[1]
        index = self._file(project, dep, "/index.html")
        if index is not None:
            return 200, index[0], index[1]
        return 404, b"Not found", "text/plain"

    @staticmethod
    def _file(project: Project, dep: Deployment, path: str) -> tuple[bytes, str] | None:
        digest = dep.manifest.get(path)
        if digest is None:
            return None
        return project.asset_bodies.get(digest)

    def upload_token(self, project: Project, now: float) -> str:
        """A fresh upload JWT for ``project``."""
        jwt = f"sandbox-upload.{self._ids.hex32()}"
        project.upload_jwts[jwt] = now + self.upload_jwt_ttl
        return jwt

    def project_for_jwt(self, jwt: str, now: float) -> Project:
        """The project an upload JWT belongs to, or 401 8000013 when unknown or expired."""
        for project in self.projects.values():
            expires = project.upload_jwts.get(jwt)
            if expires is not None and expires > now:
                return project
        raise ApiError(401, UPLOAD_JWT_EXPIRED, "Authorization failed: the upload JWT expired.")


def _candidates(path: str) -> list[str]:
    if path.endswith("/"):
        return [path + "index.html"]
    return [path, path + ".html", path + "/index.html"]


def _parse_manifest(raw: str) -> dict[str, str]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, BAD_DEPLOYMENT_REQUEST, "The manifest is not valid JSON.") from exc
    if not isinstance(manifest, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
    ):
        raise ApiError(400, BAD_DEPLOYMENT_REQUEST, "The manifest must map paths to hash strings.")
    if len(manifest) > MAX_MANIFEST_ENTRIES:
        raise ApiError(
            400,
            BAD_DEPLOYMENT_REQUEST,
            f"The manifest has more than {MAX_MANIFEST_ENTRIES} entries.",
        )
    return manifest
