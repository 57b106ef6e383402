"""payloads_platform: the typed inputs of the routing, platform and Worker action kinds.

Pure; part of ``core/payloads.py`` (whose rules hold here), kept apart by area: the routing
table (``write_routes``), the dispatch Worker platform (``core/plan_platform.py``) and Worker
version rollouts (``core/plan_workers.py``). Read by ``runtime/actions/routes.py`` and
``runtime/actions/workers.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.payload_fields import Fields
from reconciler.core.routing import RouteEntry, parse_route

__all__ = [
    "CreateNamespacePayload",
    "DeployWorkerPayload",
    "FallbackOriginPayload",
    "HealthCheck",
    "WorkerRoutePayload",
    "WorkerSplitEntry",
    "WorkerVersionPayload",
    "WriteRoutesPayload",
]


# --- routing and the platform ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteRoutesPayload:
    """``write_routes``: one tenant's routing-table entries, removals and ``domains`` statuses."""

    tenant: str
    put: tuple[tuple[str, RouteEntry], ...]  # sorted by hostname
    delete: tuple[str, ...]
    records: Mapping[str, str]  # hostname -> domains status the writes imply
    namespace_id: str | None  # as observed: no lookup by title

    @classmethod
    def parse(cls, f: Fields) -> WriteRoutesPayload:
        put = f.object("put")
        entries: list[tuple[str, RouteEntry]] = []
        for name, value in sorted(put.data.items()) if put is not None else []:
            entry = parse_route(value)
            if entry is None:
                raise f.fail(f"put.{name}", "not a routing entry (serve or suspend)")
            entries.append((name, entry))
        records = f.object("records")
        return cls(
            tenant=f.text("tenant"),
            put=tuple(entries),
            delete=f.texts("delete"),
            records={} if records is None else {k: records.text(k) for k in records.data},
            namespace_id=f.optional("namespace_id"),
        )


@dataclass(frozen=True, slots=True)
class CreateNamespacePayload:
    """``create_routes_namespace``: the routing table's KV namespace title."""

    namespace: str | None  # None: the configured one


@dataclass(frozen=True, slots=True)
class DeployWorkerPayload:
    """``deploy_worker``: the dispatch Worker script and the hash of its source."""

    script: str | None  # None: the configured one
    hash: str
    namespace: str | None


@dataclass(frozen=True, slots=True)
class WorkerRoutePayload:
    """``set_worker_route``: the route pattern, its Worker, and the route to update if any."""

    pattern: str
    script: str
    id: str | None


@dataclass(frozen=True, slots=True)
class FallbackOriginPayload:
    """``set_fallback_origin``: the zone's fallback origin."""

    origin: str


# --- Workers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerSplitEntry:
    """One version of a Worker's traffic split."""

    version_id: str
    number: int
    percentage: float


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """The GET that judges a rollout, and the canary percentages to step through."""

    url: str
    expect: tuple[int, ...]
    steps: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WorkerVersionPayload:
    """``deploy_worker_version`` and ``rollback_worker_version``: split, way back, check."""

    script: str
    versions: tuple[WorkerSplitEntry, ...]
    return_to: tuple[WorkerSplitEntry, ...]
    health: HealthCheck | None

    @classmethod
    def parse(cls, f: Fields) -> WorkerVersionPayload:
        versions = _split(f, "versions")
        if not versions:
            raise f.fail("versions", "expected at least one version")
        health = f.object("health")
        return cls(
            script=f.required("script"),
            versions=versions,
            return_to=_split(f, "return_to"),
            health=None
            if health is None
            else HealthCheck(
                url=health.required("url"),
                expect=health.integers("expect"),
                steps=health.integers("steps"),
            ),
        )


def _split(f: Fields, key: str) -> tuple[WorkerSplitEntry, ...]:
    entries: list[WorkerSplitEntry] = []
    for index, item in enumerate(f.items(key)):
        if not isinstance(item, dict):
            raise f.fail(f"{key}[{index}]", "expected an object")
        entry = Fields(item, f"{f.where}.{key}[{index}]")
        entries.append(
            WorkerSplitEntry(
                version_id=entry.required("version_id"),
                number=entry.integer("number"),
                percentage=entry.number("percentage") or 0.0,
            )
        )
    return tuple(entries)
