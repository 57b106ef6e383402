"""Workers of the Cloudflare simulator: scripts (multipart upload, settings, content) and routes.

Called by :mod:`reconciler.sandbox.cloudflare` (its lock held) for
``/accounts/{account_id}/workers/scripts…`` and ``/zones/{zone_id}/workers/routes…``. Shapes
follow the official SDK's types (``cloudflare/types/workers/``: ``Script``,
``ScriptUpdateResponse``, ``ScriptAndVersionSettingGetResponse``, ``RouteCreateResponse`` …).

An upload is ``multipart/form-data`` as on Cloudflare: a ``metadata`` part (JSON:
``main_module``, ``bindings``, ``compatibility_date``, ``compatibility_flags``, ``keep_bindings``,
``tags``…) and one part per module; a module is named by its part's filename (the SDK sends
parts named ``files``; wrangler names each part after its file). The upload is refused, with
nothing stored, when ``main_module`` is not among the parts (10021), when the main module
registers no handler (no ``export default``: 10068), or when a ``kv_namespace`` binding names a
namespace the account does not have (10041, Cloudflare's code for it). The script's ``etag`` is
the SHA-256 of its modules and metadata, so any change of code or bindings changes it.

:func:`edge_route` answers which script serves a URL on the zone (Cloudflare's route matching:
``*`` at the start of the host and at the end of the path; ``*/*`` matches everything); the
Worker host (:mod:`reconciler.sandbox.workerd_host`) asks it for every visitor request.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cloudflare_common import (
    ApiError,
    IdSource,
    api_routes,
    iso,
    require,
    success,
)
from reconciler.sandbox.pipeline import Call, Outcome

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim

SCRIPT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
SCRIPT_NOT_FOUND = 10007  # "This Worker does not exist on your account."
SCRIPT_INVALID = 10021  # script validation failed (no such module, bad metadata)
NO_HANDLERS = 10068  # the script registers no event handler
KV_BINDING_MISSING = 10041  # "No KV namespace found with ID …"
ROUTE_DUPLICATE = 10020  # sandbox's choice: a route with this pattern exists
ROUTE_NOT_FOUND = 10005  # sandbox's choice
ROUTE_INVALID = 10022  # sandbox's choice: bad pattern
DEFAULT_COMPATIBILITY_DATE = "2024-09-23"


@dataclass(slots=True)
class Module:
    """One uploaded module."""

    name: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Script:
    """One Worker script as last uploaded."""

    name: str
    main_module: str
    modules: dict[str, Module]
    bindings: list[dict[str, Any]]
    compatibility_date: str
    compatibility_flags: list[str]
    tags: list[str]
    logpush: bool
    usage_model: str
    created: float
    modified: float
    etag: str

    def as_json(self) -> dict[str, Any]:
        """The SDK's ``Script`` (list and get)."""
        return {
            "id": self.name,
            "etag": self.etag,
            "created_on": iso(self.created),
            "modified_on": iso(self.modified),
            "compatibility_date": self.compatibility_date,
            "compatibility_flags": list(self.compatibility_flags),
            "handlers": ["fetch"],
            "has_assets": False,
            "has_modules": True,
            "logpush": self.logpush,
            "tags": list(self.tags),
            "tail_consumers": [],
            "usage_model": self.usage_model,
            "last_deployed_from": "api",
        }

    def settings_json(self) -> dict[str, Any]:
        """The SDK's ``ScriptAndVersionSettingGetResponse``."""
        return {
            "bindings": [dict(b) for b in self.bindings],
            "compatibility_date": self.compatibility_date,
            "compatibility_flags": list(self.compatibility_flags),
            "logpush": self.logpush,
            "tags": list(self.tags),
            "tail_consumers": [],
            "usage_model": self.usage_model,
        }

    def export(self) -> dict[str, Any]:
        """Everything the Worker host needs to run the script."""
        return {
            "name": self.name,
            "etag": self.etag,
            "main_module": self.main_module,
            "modules": {
                m.name: {"type": m.content_type, "content": m.data.decode("utf-8", "replace")}
                for m in self.modules.values()
            },
            "bindings": [dict(b) for b in self.bindings],
            "compatibility_date": self.compatibility_date,
            "compatibility_flags": list(self.compatibility_flags),
        }


@dataclass(slots=True)
class WorkerRoute:
    """One route of the zone: a pattern and the script it runs (None: Workers off there)."""

    id: str
    pattern: str
    script: str | None

    def as_json(self) -> dict[str, Any]:
        """The SDK's ``RouteGetResponse``."""
        return {"id": self.id, "pattern": self.pattern, "script": self.script}


@dataclass(slots=True)
class WorkersStore:
    """The account's scripts and the zone's routes."""

    ids: IdSource
    scripts: dict[str, Script] = field(default_factory=dict)
    routes: dict[str, WorkerRoute] = field(default_factory=dict)

    def script(self, name: str) -> Script:
        """One script or 404 10007."""
        found = self.scripts.get(name)
        if found is None:
            raise ApiError(404, SCRIPT_NOT_FOUND, "This Worker does not exist on your account.")
        return found


# ---- upload ---------------------------------------------------------------------------------


def _metadata(call: Call) -> dict[str, Any]:
    raw = call.form.get("metadata") if call.form is not None else None
    if raw is None:
        part = next((p for p in call.parts if p.name == "metadata"), None)
        raw = part.data.decode("utf-8", "replace") if part is not None else None
    if raw is None:
        raise ApiError(400, SCRIPT_INVALID, "A multipart 'metadata' part is required.")
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, SCRIPT_INVALID, "The metadata part is not valid JSON.") from exc
    if not isinstance(metadata, dict):
        raise ApiError(400, SCRIPT_INVALID, "The metadata part must be a JSON object.")
    return metadata


def _modules(call: Call) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for part in call.parts:
        if part.name == "metadata":
            continue
        name = part.filename or part.name
        modules[name] = Module(name=name, content_type=part.content_type, data=part.data)
    return modules


def _bindings(
    sim: CloudflareSim, metadata: dict[str, Any], previous: Script | None
) -> list[dict[str, Any]]:
    bindings = metadata.get("bindings", [])
    if not isinstance(bindings, list) or not all(
        isinstance(b, dict) and isinstance(b.get("name"), str) and isinstance(b.get("type"), str)
        for b in bindings
    ):
        raise ApiError(400, SCRIPT_INVALID, "bindings must be objects with a name and a type.")
    keep = metadata.get("keep_bindings", [])
    if previous is not None and isinstance(keep, list):
        names = {b["name"] for b in bindings}
        bindings = bindings + [
            b for b in previous.bindings if b["type"] in keep and b["name"] not in names
        ]
    for binding in bindings:
        if binding["type"] == "kv_namespace":
            namespace_id = binding.get("namespace_id")
            if not isinstance(namespace_id, str) or namespace_id not in sim.kv.namespaces:
                raise ApiError(
                    400, KV_BINDING_MISSING, f"No KV namespace found with ID {namespace_id}"
                )
    return [dict(b) for b in bindings]


def _etag(modules: dict[str, Module], metadata: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode() + b"\0" + modules[name].data + b"\0")
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    return digest.hexdigest()


def upload_script(sim: CloudflareSim, call: Call) -> Outcome:
    """``PUT /accounts/{account_id}/workers/scripts/{script_name}`` (multipart)."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    name = call.params["script"]
    if not SCRIPT_NAME.match(name):
        raise ApiError(400, SCRIPT_INVALID, f"Invalid Worker name {name!r}.")
    if call.form is None:
        raise ApiError(400, SCRIPT_INVALID, "Expected a multipart/form-data body.")
    metadata = _metadata(call)
    modules = _modules(call)
    main = metadata.get("main_module")
    if not isinstance(main, str) or main not in modules:
        raise ApiError(400, SCRIPT_INVALID, f"Uncaught Error: No such module {main!r}.")
    source = modules[main].data.decode("utf-8", "replace")
    if "export default" not in source and not re.search(r"export\s*\{[^}]*\bdefault\b", source):
        raise ApiError(400, NO_HANDLERS, "The uploaded script has no registered event handlers.")
    store: WorkersStore = sim.workers
    previous = store.scripts.get(name)
    bindings = _bindings(sim, metadata, previous)
    now = sim.clock.now()
    script = Script(
        name=name,
        main_module=main,
        modules=modules,
        bindings=bindings,
        compatibility_date=str(metadata.get("compatibility_date") or DEFAULT_COMPATIBILITY_DATE),
        compatibility_flags=[str(f) for f in metadata.get("compatibility_flags", [])],
        tags=[str(t) for t in metadata.get("tags", [])],
        logpush=bool(metadata.get("logpush", False)),
        usage_model=str(metadata.get("usage_model", "standard")),
        created=previous.created if previous is not None else now,
        modified=now,
        etag=_etag(modules, {**metadata, "bindings": bindings}),
    )
    store.scripts[name] = script
    return Outcome(200, success({**script.as_json(), "startup_time_ms": 1, "entry_point": main}))


def list_scripts(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET /accounts/{account_id}/workers/scripts`` (one page, as the SDK's SinglePage)."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    store: WorkersStore = sim.workers
    return Outcome(200, success([s.as_json() for s in store.scripts.values()]))


def get_script_content(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/scripts/{name}`` and ``…/content/v2``: the main module's raw source."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    script = sim.workers.script(call.params["script"])
    module = script.modules[script.main_module]
    headers = {
        "content-type": module.content_type or "application/javascript+module",
        "cf-entrypoint": script.main_module,
        "etag": f'"{script.etag}"',
    }
    return Outcome(200, None, headers, raw=module.data)


def get_script_settings(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/scripts/{name}/settings``: bindings, compatibility and the rest."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    return Outcome(200, success(sim.workers.script(call.params["script"]).settings_json()))


def delete_script(sim: CloudflareSim, call: Call) -> Outcome:
    """``DELETE …/scripts/{name}``; routes naming it stay (and serve nothing), as on Cloudflare."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    script = sim.workers.script(call.params["script"])
    del sim.workers.scripts[script.name]
    return Outcome(200, success(None))


# ---- routes ---------------------------------------------------------------------------------

_PATTERN = re.compile(r"^(?:https?://)?(\*|\*?[a-z0-9.-]*[a-z0-9])(/\S*)$")


def _check_route_body(sim: CloudflareSim, body: Any, keep: str | None) -> tuple[str, str | None]:
    if not isinstance(body, dict) or not isinstance(body.get("pattern"), str):
        raise ApiError(400, ROUTE_INVALID, "A route needs a string 'pattern'.")
    pattern = body["pattern"].strip().lower()
    if not _PATTERN.match(pattern):
        raise ApiError(400, ROUTE_INVALID, f"Invalid route pattern {body['pattern']!r}.")
    script = body.get("script")
    if script is not None and not isinstance(script, str):
        raise ApiError(400, ROUTE_INVALID, "script must be a Worker name.")
    if script:
        sim.workers.script(script)
    for route in sim.workers.routes.values():
        if route.pattern == pattern and route.id != keep:
            raise ApiError(409, ROUTE_DUPLICATE, "A route with the same pattern already exists.")
    return pattern, script or None


def list_routes(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET /zones/{zone_id}/workers/routes``."""
    require(call.params.get("zone_id"), sim.config.zone_id, call)
    return Outcome(200, success([r.as_json() for r in sim.workers.routes.values()]))


def create_route(sim: CloudflareSim, call: Call) -> Outcome:
    """``POST /zones/{zone_id}/workers/routes`` with ``{pattern, script?}``."""
    require(call.params.get("zone_id"), sim.config.zone_id, call)
    pattern, script = _check_route_body(sim, call.json, None)
    route = WorkerRoute(id=sim.workers.ids.hex32(), pattern=pattern, script=script)
    sim.workers.routes[route.id] = route
    return Outcome(200, success(route.as_json()))


def _route(sim: CloudflareSim, call: Call) -> WorkerRoute:
    require(call.params.get("zone_id"), sim.config.zone_id, call)
    route = sim.workers.routes.get(call.params["route"])
    if route is None:
        raise ApiError(404, ROUTE_NOT_FOUND, "Route not found.")
    return route


def get_route(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET /zones/{zone_id}/workers/routes/{route_id}``."""
    return Outcome(200, success(_route(sim, call).as_json()))


def update_route(sim: CloudflareSim, call: Call) -> Outcome:
    """``PUT /zones/{zone_id}/workers/routes/{route_id}`` with ``{pattern, script?}``."""
    route = _route(sim, call)
    route.pattern, route.script = _check_route_body(sim, call.json, route.id)
    return Outcome(200, success(route.as_json()))


def delete_route(sim: CloudflareSim, call: Call) -> Outcome:
    """``DELETE /zones/{zone_id}/workers/routes/{route_id}``."""
    route = _route(sim, call)
    del sim.workers.routes[route.id]
    return Outcome(200, success({"id": route.id}))


def pattern_matches(pattern: str, host: str, path: str) -> bool:
    """Cloudflare's route matching: ``*`` leading the host, trailing the path."""
    found = _PATTERN.match(pattern)
    if found is None:
        return False
    host_pattern, path_pattern = found.group(1), found.group(2)
    host = host.lower().rstrip(".")
    if host_pattern != "*":
        if host_pattern.startswith("*."):
            if not host.endswith(host_pattern[1:]):
                return False
        elif host_pattern.startswith("*"):
            bare = host_pattern[1:]
            if host != bare and not host.endswith("." + bare):
                return False
        elif host != host_pattern:
            return False
    if path_pattern.endswith("*"):
        return path.startswith(path_pattern[:-1])
    return path == path_pattern


def edge_route(
    sim: CloudflareSim, host: str, path: str
) -> tuple[WorkerRoute | None, Script | None]:
    """The most specific route matching ``host`` + ``path`` and the script it runs.

    Cloudflare prefers the most specific pattern; longer patterns are taken as more specific.
    """
    routes = sorted(sim.workers.routes.values(), key=lambda r: len(r.pattern), reverse=True)
    for route in routes:
        if pattern_matches(route.pattern, host, path):
            script = sim.workers.scripts.get(route.script) if route.script else None
            return route, script
    return None, None


_TA = "/accounts/{account_id}/workers/scripts"
_T1 = _TA + "/{script_name}"
_TR = "/zones/{zone_id}/workers/routes"

ROUTE_SPECS: tuple[tuple[str, str, str, Any], ...] = api_routes(
    {
        _TA: {"GET": list_scripts},
        _T1: {"PUT": upload_script, "GET": get_script_content, "DELETE": delete_script},
        _T1 + "/content/v2": {"GET": get_script_content},
        _T1 + "/settings": {"GET": get_script_settings},
        _TR: {"GET": list_routes, "POST": create_route},
        _TR + "/{route_id}": {"GET": get_route, "PUT": update_route, "DELETE": delete_route},
    }
)
"""``(method, path regex, path template, handler)`` for the simulator's router."""
