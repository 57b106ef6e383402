"""Custom hostname state of the Cloudflare simulator (Cloudflare for SaaS), and its lifecycle.

Called by :mod:`reconciler.sandbox.cloudflare` with the simulator's lock held; reads the
sandbox DNS (:mod:`reconciler.sandbox.dns`); what a request may hold is checked first by
:mod:`reconciler.sandbox.cloudflare_hostname_rules`. Shapes and codes follow
``contracts/cloudflare/CONTRACT.md`` §4.

Lifecycle (evaluated lazily whenever a hostname is read, from the virtual time ``now``):

* Checks run at the documented backoff schedule measured from the *anchor* (creation or the
  last PATCH with ``ssl``): offsets 0, 60, 123, 189 … seconds, 75 retries over about 7 days.
* ``status`` (ownership) becomes ``active`` at the first check after the hostname's CNAME chain
  reaches the zone's CNAME target or fallback origin, or after the TXT record
  ``_cf-custom-hostname.<host>`` carries the ownership value. Until then it is ``pending`` with
  a verification error; once the schedule is exhausted it becomes ``moved``. An active hostname
  whose DNS stops pointing right becomes ``moved`` until a PATCH re-triggers validation.
* ``ssl.status`` is ``initializing`` for ``ssl_initializing_seconds``, then
  ``pending_validation`` (validation records shown). DCV passes at the first check after the
  TXT record ``_acme-challenge.<host>`` carries ``txt_value`` (method ``txt``) or the CNAME
  points right (HTTP DCV, any method but ``email``, non-wildcard). Then ``pending_issuance``
  and ``pending_deployment`` (``ssl_issuance_seconds`` each) and ``active``. Without DCV until
  the schedule ends: ``validation_timed_out``.
* Behaviours set by hostname name through the control endpoint: ``stick`` (pending forever),
  ``fail`` (a chosen failed status, default ``blocked`` / ``validation_timed_out``).
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from typing import Any

from reconciler.sandbox.cloudflare_common import ApiError, IdSource, iso
from reconciler.sandbox.cloudflare_hostname_rules import (
    BAD_JSON,
    BAD_JSON_MESSAGE,
    HostnamePolicy,
    check_optional,
    valid_hostname,
    valid_ssl,
)
from reconciler.sandbox.dns import SandboxDNS

HOSTNAME_STATUSES = [
    "active",
    "pending",
    "active_redeploying",
    "moved",
    "pending_deletion",
    "deleted",
    "pending_blocked",
    "pending_migration",
    "pending_provisioned",
    "test_pending",
    "test_active",
    "test_active_apex",
    "test_blocked",
    "test_failed",
    "provisioned",
    "blocked",
]
SSL_STATUSES = [
    "initializing",
    "pending_validation",
    "deleted",
    "pending_issuance",
    "pending_deployment",
    "pending_deletion",
    "pending_expiration",
    "expired",
    "active",
    "initializing_timed_out",
    "validation_timed_out",
    "issuance_timed_out",
    "deployment_timed_out",
    "deletion_timed_out",
    "pending_cleanup",
    "staging_deployment",
    "staging_active",
    "deactivating",
    "inactive",
    "backup_issued",
    "holding_deployment",
]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NOT_CNAMED = "custom hostname does not CNAME to this zone."
# Codes from contracts/cloudflare/CONTRACT.md §1.3 (validation codes: cloudflare_hostname_rules).
DUPLICATE = 1406
NOT_FOUND = 1436
INVALID_ID = 1435
MODIFY_HOSTNAME = 1439
ID_WITH_FILTERS = 1438
BAD_CONTAIN = 1437


def _check_offsets() -> list[float]:
    """The documented backoff schedule: offset 0, then 75 retries (CONTRACT.md §4.4)."""
    offsets = [0.0]
    total = 0.0
    for n in range(75):
        factor = 1.05 if n < 10 else 1.15
        total += min(math.floor(60 * factor**n), 4 * 3600)
        offsets.append(total)
    return offsets


CHECK_OFFSETS = _check_offsets()


@dataclass(frozen=True, slots=True)
class HostnameBehaviour:
    """A control-set behaviour for one hostname name."""

    mode: str  # "stick" | "fail"
    status: str = "blocked"
    ssl_status: str = "validation_timed_out"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostnameBehaviour:
        """Parse ``{"mode": "stick"|"fail", "status"?, "ssl_status"?}``."""
        mode = data.get("mode")
        if mode not in ("stick", "fail"):
            raise ValueError("mode must be 'stick' or 'fail' (DELETE the behaviour for normal)")
        status = data.get("status", "blocked")
        ssl_status = data.get("ssl_status", "validation_timed_out")
        if status not in HOSTNAME_STATUSES or ssl_status not in SSL_STATUSES:
            raise ValueError("status and ssl_status must be documented enum values")
        return cls(mode=mode, status=status, ssl_status=ssl_status)


@dataclass(slots=True)
class Hostname:
    """One custom hostname and the inputs its lifecycle is computed from."""

    id: str
    hostname: str
    created: float
    anchor: float
    ssl_id: str
    ssl: dict[str, Any]
    ownership_value: str
    dcv_token: str
    custom_metadata: dict[str, str] | None = None
    custom_origin_server: str | None = None
    custom_origin_sni: str | None = None
    active_seen: bool = False
    moved: bool = False

    @property
    def method(self) -> str:
        """The DCV method."""
        return str(self.ssl.get("method", "http"))


@dataclass(slots=True)
class Lifecycle:
    """Timing knobs of the hostname lifecycle (seconds of virtual time)."""

    ssl_initializing_seconds: float = 2.0
    ssl_issuance_seconds: float = 5.0
    validation_window: float = CHECK_OFFSETS[-1]


@dataclass(slots=True)
class HostnameStore:
    """Every custom hostname of the zone, with an index by hostname."""

    ids: IdSource
    dns: SandboxDNS
    lifecycle: Lifecycle
    targets: set[str]
    policy: HostnamePolicy = field(default_factory=HostnamePolicy)
    by_id: dict[str, Hostname] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    behaviours: dict[str, HostnameBehaviour] = field(default_factory=dict)

    # ---- lifecycle ----------------------------------------------------------------------------

    def _first_check(self, h: Hostname, since: float, now: float) -> float | None:
        """The first scheduled check at or after ``since`` that has happened by ``now``."""
        window = min(self.lifecycle.validation_window, now - h.anchor)
        if window < 0:
            return None
        wanted = max(0.0, since - h.anchor)
        i = bisect.bisect_left(CHECK_OFFSETS, wanted)
        if i >= len(CHECK_OFFSETS) or CHECK_OFFSETS[i] > window:
            return None
        return h.anchor + CHECK_OFFSETS[i]

    def evaluate(self, h: Hostname, now: float) -> tuple[str, str, list[str]]:
        """``(status, ssl.status, verification_errors)`` of ``h`` at ``now``."""
        behaviour = self.behaviours.get(h.hostname)
        init_done = h.anchor + self.lifecycle.ssl_initializing_seconds
        if behaviour is not None and behaviour.mode == "fail":
            return behaviour.status, behaviour.ssl_status, [NOT_CNAMED]
        exhausted = now - h.anchor > self.lifecycle.validation_window
        if behaviour is not None:  # stick
            return (
                "pending",
                "pending_validation" if now >= init_done else "initializing",
                [NOT_CNAMED],
            )
        cname_since = self.dns.resolves_to(h.hostname, self.targets)
        txt_since = self.dns.txt_since(f"_cf-custom-hostname.{h.hostname}", h.ownership_value)
        owned_since = min((t for t in (cname_since, txt_since) if t is not None), default=None)

        errors: list[str] = []
        if h.moved or (h.active_seen and owned_since is None):
            h.moved = True
            status = "moved"
            errors = [NOT_CNAMED]
        elif owned_since is not None and self._first_check(h, owned_since, now) is not None:
            status = "active"
            h.active_seen = True
        else:
            status = "moved" if exhausted else "pending"
            errors = [NOT_CNAMED]

        dcv_candidates = []
        if h.method == "txt":
            dcv_candidates.append(self.dns.txt_since(f"_acme-challenge.{h.hostname}", h.dcv_token))
        if h.method != "email" and not h.ssl.get("wildcard"):
            dcv_candidates.append(cname_since)
        dcv_since = min((t for t in dcv_candidates if t is not None), default=None)
        validated = None
        if dcv_since is not None:
            validated = self._first_check(h, max(dcv_since, init_done), now)
        if now < init_done:
            ssl_status = "initializing"
        elif validated is None:
            ssl_status = "validation_timed_out" if exhausted else "pending_validation"
        elif now < validated + self.lifecycle.ssl_issuance_seconds:
            ssl_status = "pending_issuance"
        elif now < validated + 2 * self.lifecycle.ssl_issuance_seconds:
            ssl_status = "pending_deployment"
        else:
            ssl_status = "active"
        return status, ssl_status, errors

    # ---- JSON -----------------------------------------------------------------------------------

    def shown(self, name: str, now: float) -> dict[str, Any] | None:
        """The custom hostname named ``name`` as the API shows it at ``now``; None when absent."""
        found = self.by_name.get(name)
        return self.to_json(self.by_id[found], now) if found is not None else None

    def to_json(self, h: Hostname, now: float) -> dict[str, Any]:
        """The CustomHostname object (CONTRACT.md §4.3)."""
        status, ssl_status, errors = self.evaluate(h, now)
        ssl: dict[str, Any] = {
            "id": h.ssl_id,
            "type": "dv",
            "method": h.method,
            "status": ssl_status,
            "bundle_method": h.ssl.get("bundle_method", "ubiquitous"),
            "wildcard": bool(h.ssl.get("wildcard", False)),
            "certificate_authority": h.ssl.get("certificate_authority", "google"),
            "settings": dict(h.ssl.get("settings", {})),
        }
        if ssl_status in ("pending_validation", "validation_timed_out", "initializing"):
            ssl["validation_records"] = (
                [] if ssl_status == "initializing" else [self._validation_record(h)]
            )
        if ssl_status == "validation_timed_out":
            ssl["validation_errors"] = [
                {"message": f"Timed out validating the certificate for {h.hostname}."}
            ]
        if ssl_status == "active":
            ssl["hosts"] = [h.hostname]
            ssl["issuer"] = "GoogleTrustServices"
            ssl["expires_on"] = iso(h.anchor + 90 * 86400)
        body: dict[str, Any] = {
            "id": h.id,
            "hostname": h.hostname,
            "ssl": ssl,
            "status": status,
            "verification_errors": errors,
            "ownership_verification": {
                "type": "txt",
                "name": f"_cf-custom-hostname.{h.hostname}",
                "value": h.ownership_value,
            },
            "ownership_verification_http": {
                "http_url": f"http://{h.hostname}/.well-known/cf-custom-hostname-challenge/{h.id}",
                "http_body": h.ownership_value,
            },
            "created_at": iso(h.created),
        }
        if h.custom_metadata is not None:
            body["custom_metadata"] = dict(h.custom_metadata)
        if h.custom_origin_server is not None:
            body["custom_origin_server"] = h.custom_origin_server
        if h.custom_origin_sni is not None:
            body["custom_origin_sni"] = h.custom_origin_sni
        return body

    def _validation_record(self, h: Hostname) -> dict[str, Any]:
        if h.method == "txt":
            return {"txt_name": f"_acme-challenge.{h.hostname}", "txt_value": h.dcv_token}
        if h.method == "http":
            return {
                "http_url": f"http://{h.hostname}/.well-known/pki-validation/{h.dcv_token}.txt",
                "http_body": h.dcv_token,
            }
        apex = ".".join(h.hostname.split(".")[-2:])
        return {"emails": [f"{box}@{apex}" for box in ("administrator", "hostmaster", "webmaster")]}

    # ---- operations -----------------------------------------------------------------------------

    def get(self, hostname_id: str) -> Hostname:
        """One hostname by id, or 400 1435 / 404 1436."""
        if not UUID_RE.match(hostname_id):
            raise ApiError(400, INVALID_ID, "The custom hostname ID is invalid.")
        h = self.by_id.get(hostname_id)
        if h is None:
            raise ApiError(404, NOT_FOUND, "The custom hostname was not found.")
        return h

    def create(self, body: Any, now: float) -> Hostname:
        """Create a hostname from the POST body (CONTRACT.md §4.1); refused whole or made whole."""
        if not isinstance(body, dict):
            raise ApiError(400, BAD_JSON, BAD_JSON_MESSAGE)
        name = valid_hostname(body.get("hostname"), self.policy.refuse_reserved_tlds)
        ssl = valid_ssl(body.get("ssl", {"method": "http", "type": "dv"}))
        check_optional(
            self.policy, body, wildcard=bool(ssl.get("wildcard")), in_zone_dns=self._in_zone_dns
        )
        if name in self.by_name:
            raise ApiError(409, DUPLICATE, "Duplicate custom hostname found.")
        h = Hostname(
            id=self.ids.uuid(),
            hostname=name,
            created=now,
            anchor=now,
            ssl_id=self.ids.uuid(),
            ssl=ssl,
            ownership_value=self.ids.uuid(),
            dcv_token=self.ids.hex32(),
        )
        _apply_optional(h, body)
        self.by_id[h.id] = h
        self.by_name[name] = h.id
        return h

    def edit(self, hostname_id: str, body: Any, now: float) -> Hostname:
        """PATCH a hostname: origin/metadata changes, and ``ssl`` re-triggers validation."""
        h = self.get(hostname_id)
        if not isinstance(body, dict):
            raise ApiError(400, BAD_JSON, BAD_JSON_MESSAGE)
        if "hostname" in body and body["hostname"] != h.hostname:
            raise ApiError(409, MODIFY_HOSTNAME, "Modifying the custom hostname is not supported.")
        ssl = valid_ssl(body["ssl"]) if "ssl" in body else None
        check_optional(
            self.policy,
            body,
            wildcard=bool((ssl or h.ssl).get("wildcard")),
            in_zone_dns=self._in_zone_dns,
        )
        if ssl is not None:
            if ssl.get("method") != h.method:
                h.dcv_token = self.ids.hex32()
            h.ssl = ssl
            h.anchor = now
            h.moved = False
            h.active_seen = False
        _apply_optional(h, body)
        return h

    def _in_zone_dns(self, name: str) -> bool:
        """Whether ``name`` has a record: the zone's targets or a sandbox DNS entry."""
        return name in self.targets or self.dns.get(name) is not None

    def delete(self, hostname_id: str) -> str:
        """Delete a hostname; return its id."""
        h = self.get(hostname_id)
        del self.by_id[h.id]
        del self.by_name[h.hostname]
        return h.id

    def listing(self, query: dict[str, str], now: float) -> list[Hostname]:
        """Hostnames matching the list filters, in the requested order (CONTRACT.md §4.2)."""
        name_filters = [
            k
            for k in ("hostname", "hostname.exact", "hostname.contain", "hostname.startsWith")
            if k in query
        ]
        if "id" in query and name_filters:
            raise ApiError(
                400, ID_WITH_FILTERS, "The id filter cannot be combined with other filters."
            )
        if "id" in query and len(query["id"]) != 36:
            raise ApiError(400, INVALID_ID, "The custom hostname ID is invalid.")
        if len(name_filters) > 1:
            raise ApiError(400, BAD_CONTAIN, "Only one hostname filter may be given.")
        items: list[Hostname]
        if "id" in query:
            one = self.by_id.get(query["id"])
            items = [one] if one else []
        elif name_filters and name_filters[0] in ("hostname", "hostname.exact"):
            wanted = query[name_filters[0]].strip().rstrip(".").lower()
            found = self.by_name.get(wanted)
            items = [self.by_id[found]] if found else []
        elif name_filters:
            needle = query[name_filters[0]].lower()
            if name_filters[0] == "hostname.contain" and not needle:
                raise ApiError(400, BAD_CONTAIN, "Invalid hostname.contain filter.")
            if name_filters[0] == "hostname.contain":
                items = [h for h in self.by_id.values() if needle in h.hostname]
            else:
                items = [h for h in self.by_id.values() if h.hostname.startswith(needle)]
        else:
            items = list(self.by_id.values())
        if "custom_origin_server" in query:
            items = [h for h in items if h.custom_origin_server == query["custom_origin_server"]]
        status_filter = query.get("hostname_status")
        ssl_filter = query.get("ssl_status")
        if status_filter is not None and status_filter not in HOSTNAME_STATUSES:
            raise ApiError(400, 1001, "hostname_status must be a custom hostname status.")
        if ssl_filter is not None and ssl_filter not in SSL_STATUSES:
            raise ApiError(400, 1001, "ssl_status must be a certificate status.")
        if query.get("ssl") == "1" and ssl_filter is None:
            ssl_filter = "active"
        order = query.get("order")
        if status_filter or ssl_filter or order == "ssl_status":
            evaluated = [(h, self.evaluate(h, now)) for h in items]
            if status_filter:
                evaluated = [e for e in evaluated if e[1][0] == status_filter]
            if ssl_filter:
                evaluated = [e for e in evaluated if e[1][1] == ssl_filter]
            if order == "ssl_status":
                evaluated.sort(key=lambda e: e[1][1])
            items = [e[0] for e in evaluated]
        elif order == "ssl":
            items = sorted(items, key=lambda h: h.method)
        if query.get("direction") == "desc":
            items.reverse()
        return items


def _apply_optional(h: Hostname, body: dict[str, Any]) -> None:
    """Store the optional fields (already checked by ``HostnameStore._check_optional``)."""
    if "custom_metadata" in body:
        meta = body["custom_metadata"]
        h.custom_metadata = dict(meta) if meta is not None else None
    if "custom_origin_server" in body:
        h.custom_origin_server = body["custom_origin_server"]
    if "custom_origin_sni" in body:
        h.custom_origin_sni = body["custom_origin_sni"]
