"""The simulator's v4 routes: the route table, and the handlers of Pages, hostnames, purge, D1.

Used by :meth:`reconciler.sandbox.cloudflare.CloudflareSim.route` (the request pipeline calls a
handler with the simulator's lock held). Each handler checks the account or zone of the path,
reads its store (:mod:`~reconciler.sandbox.cloudflare_pages`,
:mod:`~reconciler.sandbox.cloudflare_hostnames`, :mod:`~reconciler.sandbox.cloudflare_d1`) and
answers an :class:`~reconciler.sandbox.cloudflare_common.Outcome`; Workers KV and Workers have
their own modules (:mod:`~reconciler.sandbox.cloudflare_kv`,
:mod:`~reconciler.sandbox.cloudflare_workers`), whose routes :data:`ROUTES` joins.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from reconciler.sandbox.cloudflare_common import (
    ApiError,
    api_routes,
    iso,
    no_route,
    one_page,
    page_params,
    success,
)
from reconciler.sandbox.cloudflare_d1 import TIME_TRAVEL_ROUTES
from reconciler.sandbox.cloudflare_hostname_rules import BAD_JSON, BAD_JSON_MESSAGE
from reconciler.sandbox.cloudflare_kv import ROUTE_SPECS as KV_ROUTES
from reconciler.sandbox.cloudflare_worker_versions import VERSION_ROUTES
from reconciler.sandbox.cloudflare_workers import ROUTE_SPECS as WORKER_ROUTES
from reconciler.sandbox.pipeline import Call, Handler, Outcome

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim

PURGE_INVALID = 1012
FALLBACK_NOT_FOUND = 1551
FALLBACK_NOT_IN_ZONE = 1552  # sandbox's choice: the fallback origin must be a record of the zone


def _account(sim: CloudflareSim, call: Call) -> None:
    if call.params.get("account_id") != sim.config.account_id:
        raise no_route(call.path)


def _zone(sim: CloudflareSim, call: Call) -> None:
    if call.params.get("zone_id") != sim.config.zone_id:
        raise no_route(call.path)


def _list_projects(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    page, per_page = page_params(
        call.query, default_per_page=10, min_per_page=1, max_per_page=100, clamp=True
    )
    projects = list(sim.pages.projects.values())
    chunk, info = one_page(projects, page, per_page, total_pages=True)
    return Outcome(200, success([sim.pages.project_json(p, now) for p in chunk], info))


def _get_project(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    return Outcome(200, success(sim.pages.project_json(project, now)))


def _list_deployments(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    env = call.query.get("env")
    if env not in (None, "production", "preview"):
        raise ApiError(400, 8000096, "env must be production or preview.")
    page, per_page = page_params(
        call.query, default_per_page=25, min_per_page=1, max_per_page=25, clamp=True
    )
    deps = sim.pages.list_deployments(project, env, now)
    chunk, info = one_page(deps, page, per_page, total_pages=True)
    return Outcome(200, success([sim.pages.deployment_json(d, now) for d in chunk], info))


def _get_deployment(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    dep = sim.pages.deployment(project, call.params["deployment"])
    return Outcome(200, success(sim.pages.deployment_json(dep, now)))


def _create_deployment(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    if call.form is None:
        raise ApiError(400, 8000096, "Expected a multipart/form-data body.")
    dep = sim.pages.create_deployment(project, call.form, call.files, now)
    return Outcome(200, success(sim.pages.deployment_json(dep, now)))


def _retry_deployment(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    dep = sim.pages.retry(
        project, call.params["deployment"], now, new_id=sim.config.retry_creates_new
    )
    return Outcome(200, success(sim.pages.deployment_json(dep, now)))


def _rollback_deployment(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    dep = sim.pages.rollback(project, call.params["deployment"], now)
    return Outcome(200, success(sim.pages.deployment_json(dep, now)))


def _delete_deployment(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    now = sim.clock.now()
    project = sim.pages.project(call.params["project"])
    force = call.query.get("force", "").lower() == "true"
    sim.pages.delete(project, call.params["deployment"], now, force=force)
    return Outcome(200, success(None))


def _upload_token(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    project = sim.pages.project(call.params["project"])
    return Outcome(200, success({"jwt": sim.pages.upload_token(project, sim.clock.now())}))


def _assets(sim: CloudflareSim, call: Call) -> Outcome:
    jwt = call.headers.get("authorization", "").removeprefix("Bearer ").strip()
    project = sim.pages.project_for_jwt(jwt, sim.clock.now())
    action = call.params["action"]
    body = call.json
    if action in ("check-missing", "upsert-hashes"):
        if not isinstance(body, dict) or not isinstance(body.get("hashes"), list):
            raise ApiError(400, 8000096, 'Expected {"hashes": [...]}.')
        hashes = [str(h) for h in body["hashes"]]
        if action == "upsert-hashes":
            return Outcome(200, success(None))
        return Outcome(200, success([h for h in hashes if h not in project.assets]))
    if not isinstance(body, list) or not all(isinstance(i, dict) and "key" in i for i in body):
        raise ApiError(400, 8000096, "Expected a list of {key, value, metadata, base64}.")
    sim.pages.store_assets(project, body)
    return Outcome(200, success({"successful_key_count": len(body), "unsuccessful_keys": []}))


def _hostname_status(sim: CloudflareSim, documented: int) -> int:
    return documented if sim.config.hostname_statuses == "docs" else 200


def _list_hostnames(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    now = sim.clock.now()
    page, per_page = page_params(
        call.query, default_per_page=20, min_per_page=5, max_per_page=50, clamp=False
    )
    items = sim.hostnames.listing(call.query, now)
    chunk, info = one_page(items, page, per_page, total_pages=False, total=len(sim.hostnames.by_id))
    return Outcome(200, success([sim.hostnames.to_json(h, now) for h in chunk], info))


def _create_hostname(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    if call.json_error:
        raise ApiError(400, BAD_JSON, BAD_JSON_MESSAGE)
    now = sim.clock.now()
    h = sim.hostnames.create(call.json, now)
    return Outcome(_hostname_status(sim, 201), success(sim.hostnames.to_json(h, now)))


def _get_hostname(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    now = sim.clock.now()
    h = sim.hostnames.get(call.params["hostname"])
    return Outcome(200, success(sim.hostnames.to_json(h, now)))


def _edit_hostname(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    if call.json_error:
        raise ApiError(400, BAD_JSON, BAD_JSON_MESSAGE)
    now = sim.clock.now()
    h = sim.hostnames.edit(call.params["hostname"], call.json, now)
    return Outcome(_hostname_status(sim, 202), success(sim.hostnames.to_json(h, now)))


def _delete_hostname(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    deleted = sim.hostnames.delete(call.params["hostname"])
    if sim.config.hostname_delete_body == "bare":
        return Outcome(200, {"id": deleted})
    return Outcome(200, success({"id": deleted}))


def _fallback(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    now = sim.clock.now()
    if call.method == "PUT":
        body = call.json
        origin = body.get("origin") if isinstance(body, dict) else None
        if not isinstance(origin, str) or not origin or len(origin) > 255:
            raise ApiError(400, 1415, "origin must be a hostname of at most 255 characters.")
        zone = sim.config.zone_name
        name = origin.strip().rstrip(".").lower()
        if not name.endswith("." + zone):
            raise ApiError(
                400,
                FALLBACK_NOT_IN_ZONE,
                f"The fallback origin must be a proxied record of the zone {zone} (for a Worker, "
                f"an originless one such as service.{zone} AAAA 100::); {name} is not.",
            )
        created = sim.fallback["created_at"] if sim.fallback else iso(now)
        sim.fallback = {
            "origin": origin.lower(),
            "status": "active",
            "errors": [],
            "created_at": created,
            "updated_at": iso(now),
        }
        sim.hostnames.targets = {sim.config.cname_target, origin.lower()}
        return Outcome(200, success(dict(sim.fallback)))
    if sim.fallback is None:
        raise ApiError(404, FALLBACK_NOT_FOUND, "No fallback origin is set for this zone.")
    if call.method == "DELETE":
        gone = {**sim.fallback, "status": "pending_deletion", "updated_at": iso(now)}
        sim.fallback = None
        sim.hostnames.targets = {sim.config.cname_target}
        return Outcome(200, success(gone))
    return Outcome(200, success(dict(sim.fallback)))


PURGE_KEYS = ("purge_everything", "files", "tags", "hosts", "prefixes")


def _purge(sim: CloudflareSim, call: Call) -> Outcome:
    _zone(sim, call)
    body = call.json
    if not isinstance(body, dict):
        raise ApiError(400, PURGE_INVALID, "Request body must be a JSON object.")
    keys = [k for k in PURGE_KEYS if k in body]
    if len(keys) != 1 or set(body) - set(PURGE_KEYS):
        raise ApiError(
            400,
            PURGE_INVALID,
            "Exactly one of purge_everything, files, tags, hosts or prefixes is required.",
        )
    key = keys[0]
    value = body[key]
    if key == "purge_everything":
        if value is not True:
            raise ApiError(400, PURGE_INVALID, "purge_everything must be true.")
    else:
        if not isinstance(value, list) or not value:
            raise ApiError(400, PURGE_INVALID, f"{key} must be a non-empty array.")
        limit = sim.config.purge_max_files if key == "files" else sim.config.purge_max_items
        if len(value) > limit:
            raise ApiError(
                400,
                PURGE_INVALID,
                f"Too many {key} in one request: at most {limit} are allowed.",
            )
        for item in value:
            ok = isinstance(item, str) or (
                key == "files" and isinstance(item, dict) and isinstance(item.get("url"), str)
            )
            if not ok or (isinstance(item, str) and not item):
                raise ApiError(400, PURGE_INVALID, f"Invalid entry in {key}.")
    sim.purges.append({"at": sim.clock.now(), "kind": key, "items": value})
    return Outcome(200, success({"id": sim.config.zone_id}))


def _d1_list(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    page, per_page = page_params(
        call.query, default_per_page=1000, min_per_page=10, max_per_page=10000, clamp=False
    )
    dbs = list(sim.d1.databases.values())
    if "name" in call.query:
        dbs = [d for d in dbs if call.query["name"] in d.name]
    chunk, info = one_page(dbs, page, per_page, total_pages=False)
    return Outcome(200, success([sim.d1.summary(d, details=False) for d in chunk], info))


def _d1_get(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    db = sim.d1.get(call.params["database"])
    return Outcome(200, success(sim.d1.summary(db, details=True)))


def _d1_query(sim: CloudflareSim, call: Call) -> Outcome:
    _account(sim, call)
    db = sim.d1.get(call.params["database"])
    raw = call.path.endswith("/raw")
    return Outcome(200, success(sim.d1.query(db, call.json, raw=raw)))


_ACC = "/accounts/{account_id}"
_PROJ = _ACC + "/pages/projects/{project_name}"
_DEP = _PROJ + "/deployments/{deployment_id}"
_HOSTNAMES = "/zones/{zone_id}/custom_hostnames"
_D1 = _ACC + "/d1/database"

_ROUTE_SPECS: tuple[tuple[str, str, str, Handler], ...] = api_routes(
    {
        _ACC + "/pages/projects": {"GET": _list_projects},
        _PROJ: {"GET": _get_project},
        _PROJ + "/deployments": {"GET": _list_deployments, "POST": _create_deployment},
        _DEP: {"GET": _get_deployment, "DELETE": _delete_deployment},
        _DEP + "/retry": {"POST": _retry_deployment},
        _DEP + "/rollback": {"POST": _rollback_deployment},
        _PROJ + "/upload-token": {"GET": _upload_token},
        "/pages/assets/{action}": {"POST": _assets},
        _HOSTNAMES + "/fallback_origin": {"GET": _fallback, "PUT": _fallback, "DELETE": _fallback},
        _HOSTNAMES: {"GET": _list_hostnames, "POST": _create_hostname},
        _HOSTNAMES + "/{custom_hostname_id}": {
            "GET": _get_hostname,
            "PATCH": _edit_hostname,
            "DELETE": _delete_hostname,
        },
        "/zones/{zone_id}/purge_cache": {"POST": _purge},
        _D1: {"GET": _d1_list},
        _D1 + "/{database_id}": {"GET": _d1_get},
        _D1 + "/{database_id}/query": {"POST": _d1_query},
        _D1 + "/{database_id}/raw": {"POST": _d1_query},
    }
)
ROUTES = tuple(
    (method, re.compile(f"^{pattern}/?\\Z"), template, handler)
    for method, pattern, template, handler in (
        *_ROUTE_SPECS,
        *KV_ROUTES,
        *WORKER_ROUTES,
        *TIME_TRAVEL_ROUTES,
        *VERSION_ROUTES,
    )
)
