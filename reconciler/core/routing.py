"""routing: the dispatch Worker's routing table and the platform it runs on, as plain facts.

Custom hostnames carry no origin (ROUTING.md section 2): the SaaS zone's fallback origin is an
originless record, one ``*/*`` Worker route sends every custom hostname's request to the
dispatch Worker (``workers/dispatch/``), and the Worker looks the request's hostname up in a
Workers KV namespace, the routing table the reconciler owns. This module holds the table's
entry format, the declared platform and what an observation showed of it. Pure: the planner
(``core/plan_routes.py``, ``core/plan_platform.py``) compares these values, the runtime writes
and reads them through ``providers/cloudflare_kv.py`` and ``providers/cloudflare_workers.py``.

Rules:

1. A key is a hostname (canonical: IDNA A-label, lowercase, no final dot). Its value is compact
   JSON with sorted keys: ``{"action":"serve","project":"<pages project>","site":"<site>",
   "tenant":"<tenant>"}`` or ``{"action":"suspend","tenant":"<tenant>"}``. An absent key means
   "not found": the Worker answers 404.
2. The same JSON is the key's KV metadata (at most 1,024 bytes, ROUTING.md section 3), so one
   key listing (1,000 keys per page) observes the whole table without reading values.
3. Every key of the namespace is ours: the namespace is declared for this purpose only.
4. KV is eventually consistent at the edge (about 60 s): a write is done when the API accepted
   it, visible everywhere up to a minute later. Plans say so; they never claim it at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "KV_BULK_LIMIT",
    "KV_CONSISTENCY_SECONDS",
    "ROUTE_SERVE",
    "ROUTE_SUSPEND",
    "DesiredPlatform",
    "ObservedPlatform",
    "RouteEntry",
    "parse_route",
]

ROUTE_SERVE = "serve"
ROUTE_SUSPEND = "suspend"
KV_BULK_LIMIT = 10_000
"""Pairs per KV bulk write or bulk delete request (ROUTING.md section 3)."""
KV_CONSISTENCY_SECONDS = 60
"""How long a KV write may take to be seen at every edge location (ROUTING.md section 3)."""


class RouteEntry(NamedTuple):
    """One routing-table value: serve a site's Pages project, or the suspension page.

    A named tuple (immutable, typed) rather than a dataclass: an observation holds one per
    hostname (15,000 in a large fleet), and the observation digest encodes tuples in C.
    """

    action: str  # serve | suspend
    tenant: str
    site: str | None = None  # serve only
    project: str | None = None  # serve only: the Pages project whose pages.dev host serves it

    def as_json(self) -> dict[str, str]:
        """The value as a JSON object (rule 1)."""
        if self.action == ROUTE_SUSPEND:
            return {"action": ROUTE_SUSPEND, "tenant": self.tenant}
        return {
            "action": ROUTE_SERVE,
            "project": self.project or "",
            "site": self.site or "",
            "tenant": self.tenant,
        }

    def value(self) -> str:
        """The KV value: compact JSON with sorted keys."""
        return json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """``serve acme-home (project acme-home)`` or ``suspend (tenant acme)``, for reasons."""
        if self.action == ROUTE_SUSPEND:
            return f"suspend (tenant {self.tenant})"
        return f"serve {self.site} (project {self.project})"


def parse_route(value: object) -> RouteEntry | None:
    """A routing-table value (JSON text or an already parsed object); None when unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    action, tenant = value.get("action"), value.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        return None
    if action == ROUTE_SUSPEND:
        return RouteEntry(action=ROUTE_SUSPEND, tenant=tenant)
    site, project = value.get("site"), value.get("project")
    if action == ROUTE_SERVE and isinstance(site, str) and isinstance(project, str):
        return RouteEntry(action=ROUTE_SERVE, tenant=tenant, site=site, project=project)
    return None


@dataclass(frozen=True, slots=True)
class DesiredPlatform:
    """The routing platform as declared in settings (docs/routing.md).

    ``script_hash`` is the sha256 of the dispatch Worker's source as shipped in the repository;
    the deployed script carries it in its ``ROUTER_VERSION`` plain-text binding, so drift is
    seen without downloading the script.
    """

    script: str  # Worker script name
    script_hash: str  # "sha256:<hex>" of workers/dispatch/ as shipped
    namespace: str  # KV namespace title
    route_pattern: str  # e.g. "*/*"
    fallback_origin: str  # the originless proxied record, e.g. "service.saas.example"


@dataclass(frozen=True, slots=True)
class ObservedPlatform:
    """What the account showed of the platform; None fields were not found.

    ``script_namespace`` is the namespace id the deployed Worker's ``ROUTES`` binding names.
    """

    namespace_id: str | None
    script_hash: str | None  # the deployed Worker's ROUTER_VERSION; None: no such script
    script_namespace: str | None
    route_id: str | None  # the route with the declared pattern, if any
    route_script: str | None  # the script that route runs (None: the route has none)
    fallback_origin: str | None
    fallback_status: str | None = None  # initializing | pending_deployment | active | ...

    @classmethod
    def namespace_only(cls, namespace_id: str | None) -> ObservedPlatform:
        """The routing table's namespace and nothing else found (or read) of the platform."""
        return cls(
            namespace_id=namespace_id,
            script_hash=None,
            script_namespace=None,
            route_id=None,
            route_script=None,
            fallback_origin=None,
        )
