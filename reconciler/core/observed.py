"""Observed facts: what the world showed when it was read, normalised for comparison.

``runtime/observe.py`` builds an :class:`Observed` through the adapters (read-only); the
planner compares it with :class:`~reconciler.core.desired.Desired`. Values are plain and frozen,
and :meth:`Observed.digest` hashes them canonically so a saved plan can be refused when the
world has moved (``StalePlanError``); a plan carries it as an :class:`ObservedDigest`, hashed
only when the plan is saved, printed or compared.

Rules:

1. A provider not read in full is named in ``incomplete`` with a :class:`Gap`: a closed reason
   and the words for people. The planner makes no create and no delete that depends on it;
   :attr:`Gap.failed` alone says whether the reading went wrong (conditions and the daemon's
   scheduling both ask it) and :attr:`Gap.unreadable` whether the CLI refuses to plan.
2. Hostnames are canonical, as in ``Desired``.
3. ``owned`` means our own records say we created the hostname: the D1 ``domains`` row
   records its custom hostname id, or the intent journal holds our create of it (a run killed
   between the create and the record), or, on an account entitled to custom metadata, it
   carries our ownership marker. Nothing else is ever deleted or changed.
4. ``routes`` is the dispatch Worker's routing table (``core/routing.py``) as listed, and
   ``platform`` what the account shows of the Worker, its KV namespace, route and fallback
   origin (None: not read).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from operator import attrgetter
from typing import Any

from reconciler.core.budget import MediaWeight
from reconciler.core.facts import CustomerBilling
from reconciler.core.identity import BuildInputs
from reconciler.core.routing import ObservedPlatform, RouteEntry
from reconciler.core.worker_facts import ObservedWorker, WorkerRollout


class Source(StrEnum):
    """The readings an observation is made of; each can be complete or not."""

    PAGES = "pages"
    HOSTNAMES = "hostnames"
    D1 = "d1"
    STRIPE = "stripe"
    WHATSAPP = "whatsapp"
    WORKERS = "workers"
    ROUTES = "routes"  # the routing table (KV keys)
    PLATFORM = "platform"  # the dispatch Worker, its namespace, route and fallback origin


class GapReason(StrEnum):
    """Why a provider was not read in full."""

    UNCONFIGURED = "unconfigured"  # no client: a setting is missing
    SKIPPED = "skipped"  # this pass chose not to read it (a sweep, an open breaker, deferred)
    FAILED = "failed"  # the provider answered with an error
    TIMED_OUT = "timed_out"  # no answer within the reading's time limit
    DISCONNECTED = "disconnected"  # read, and found not connected (the WhatsApp instance)


_FAILED = frozenset({GapReason.FAILED, GapReason.TIMED_OUT, GapReason.DISCONNECTED})
_UNREADABLE = frozenset({GapReason.FAILED, GapReason.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class Gap:
    """Why one provider was not read in full: a closed reason and the detail for people."""

    reason: GapReason
    detail: str  # the words plans, conditions and logs show (unchanged by the reason)

    @property
    def failed(self) -> bool:
        """Whether the reading went wrong, so reading again may help.

        A provider not configured or skipped on purpose is not a failed reading: nothing is
        wrong with it, and reading again changes nothing until a setting or the pass does.
        """
        return self.reason in _FAILED

    @property
    def unreadable(self) -> bool:
        """Whether the provider errored or did not answer (the CLI refuses to plan then)."""
        return self.reason in _UNREADABLE


@dataclass(frozen=True, slots=True)
class ObservedDeployment:
    """A Pages deployment, with the site/version tag our publishes put on it."""

    id: str
    environment: str  # production | preview
    status: str  # latest_stage.status: success | failure | active | idle | canceled | skipped
    stage: str  # latest_stage.name
    created_on: float
    site: str | None = None  # from our tag; None for deployments we did not make
    version: int | None = None
    commit: str | None = None
    build: str | None = None  # first 12 hex digits of the build identity, from our tag


@dataclass(frozen=True, slots=True)
class ObservedProject:
    """A Pages project: where it serves, what is live, and (when read) its deployments."""

    name: str
    subdomain: str  # e.g. acme-home.pages.dev: the origin custom hostnames point at
    production_deployment_id: str | None  # the deployment serving production now
    deployments: tuple[ObservedDeployment, ...] | None = None  # None: not listed this pass


@dataclass(frozen=True, slots=True)
class PublishRecord:
    """A row of D1 ``publish_versions``."""

    site: str
    environment: str
    version: int
    status: str  # building | deploying | live | failed | superseded
    deployment_id: str | None
    attempts: int
    error_message: str | None
    created_at: float
    build_identity: str | None = None  # None for rows written before builds had an identity
    build_inputs: BuildInputs | None = None


@dataclass(frozen=True, slots=True)
class SiteLedger:
    """What D1 says about one site: the live publish per environment and the latest attempt."""

    site: str
    live: Mapping[str, PublishRecord] = field(default_factory=dict)  # environment -> row
    latest: Mapping[str, PublishRecord] = field(default_factory=dict)  # newest row per env
    versions: frozenset[int] = frozenset()  # site_versions that exist (content snapshots)
    # sha256 of each version's content_json (site_versions.content_hash), where known.
    content_digests: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObservedHostname:
    """A custom hostname in the zone, joined with our D1 ``domains`` row when there is one."""

    id: str
    hostname: str  # canonical
    status: str  # pending | active | moved | deleted | blocked | ... (contract §4.4)
    ssl_status: str | None  # contract §4.5
    ssl_method: str | None
    origin: str | None  # custom_origin_server
    owned: bool  # our records say we created it (module rule 3)
    site: str | None  # from our records (or the marker)
    tenant: str | None
    deletion_policy: str | None  # recorded in the marker at creation time
    created_at: float
    status_since: float  # when the current status began, from D1 (else created_at)
    recreate_count: int = 0
    verification_errors: tuple[str, ...] = ()
    # The D1 ``domains`` row as recorded; ``recorded_status`` None means there is no row
    # (the column is NOT NULL). The planner records what differs (plan.py rule 7).
    recorded_status: str | None = None  # domains vocabulary: see :func:`domain_status`
    recorded_ssl_status: str | None = None
    recorded_id: str | None = None  # domains.custom_hostname_id
    recorded_origin: str | None = None  # domains.custom_origin_server
    recorded_site: str | None = None  # domains.site_id
    # Ownership verification (``ownership_verification``): the TXT record a txt-method
    # hostname needs, ``_cf-custom-hostname.<host>`` and its value.
    txt_name: str | None = None
    txt_value: str | None = None
    # What a DNS lookup found, for hostnames stuck or past their validation timeout only
    # (``dns_checked`` False: not looked up this pass, or the lookup failed).
    dns_checked: bool = False
    dns_cname: str | None = None  # the hostname's CNAME target (first hop), None: no CNAME
    dns_txt: tuple[str, ...] = ()  # the TXT values at ``txt_name``
    # The certificate's DCV TXT record (``ssl.validation_records``), as Cloudflare shows it and
    # as D1 ``domains.dcv_txt_value`` records it (the record runbook 2 digs for).
    dcv_txt_name: str | None = None
    dcv_txt_value: str | None = None
    recorded_dcv_txt_value: str | None = None


@dataclass(frozen=True, slots=True)
class DomainRecord:
    """A D1 ``domains`` row not marked ``deleted`` whose hostname the listing did not show.

    The observer keeps only rows the custom hostname listing covered (the whole zone, or the
    names a scoped observation looked up) and succeeded for; the planner marks the row
    ``deleted`` when no spec declares the hostname (rule 7), or counts a recreation when a
    declared one must be created again (its recorded hostname vanished).
    """

    hostname: str  # canonical
    site: str
    tenant: str | None
    status: str  # domains vocabulary, never ``deleted``
    custom_hostname_id: str | None
    origin: str | None
    recreate_count: int = 0


# Cloudflare statuses (contract §4.4, §4.5) that mean the hostname failed or timed out.
FAILED_HOSTNAME_STATUS = frozenset(
    {"moved", "deleted", "blocked", "pending_blocked", "test_failed"}
)
FAILED_SSL_STATUS = frozenset(
    {
        "initializing_timed_out",
        "validation_timed_out",
        "issuance_timed_out",
        "deployment_timed_out",
        "expired",
        "deleted",
    }
)


DOMAIN_DELETED = "deleted"
"""``domains.status`` of a hostname gone from the zone (never a :func:`domain_status` result)."""

DOMAIN_STATUSES = frozenset(
    {"pending_validation", "pending_ssl", "active", "failed", "suspended", DOMAIN_DELETED}
)
"""The ``domains.status`` vocabulary (``migrations/0001``): :func:`domain_status`'s results and
:data:`DOMAIN_DELETED`."""


def domain_status(status: str, ssl_status: str | None, *, suspended: bool = False) -> str:
    """Cloudflare's statuses in the ``domains.status`` vocabulary of the runbooks.

    ``migrations/0001`` documents ``pending_validation | pending_ssl | active | failed |
    suspended | deleted``; ``deleted`` is written only when the reconciler deletes a hostname.

    Args:
        status: the custom hostname's ``status``.
        ssl_status: its ``ssl.status`` (None or empty when Cloudflare gave none).
        suspended: the tenant is hard-locked (the hostname serves the suspension page).

    Returns:
        ``failed`` (a failed or timed-out status, even when suspended), ``suspended``,
        ``active`` (both statuses active), ``pending_ssl`` (validated, certificate pending)
        or ``pending_validation``.
    """
    if status in FAILED_HOSTNAME_STATUS or (ssl_status or "") in FAILED_SSL_STATUS:
        return "failed"
    if suspended:
        return "suspended"
    if status == "active" and ssl_status == "active":
        return "active"
    if status == "active":
        return "pending_ssl"
    return "pending_validation"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A row of D1 ``tenants``: the access the app enforces now."""

    name: str
    access: str  # active | soft_locked | hard_locked
    changed_at: float | None = None


@dataclass(frozen=True, slots=True)
class DunningRecord:
    """A row of D1 ``dunning_step_logs``."""

    invoice_id: str
    step_code: str
    status: str  # pending | sent | failed | skipped | unknown
    error_message: str | None = None
    phone: str | None = None  # the number the last attempt went to (a failed one: why)
    attempts: int = 0  # sends started; pending with attempts and no error: outcome unknown


@dataclass(frozen=True, slots=True)
class BuildPreview:
    """An in-memory build of a version about to be published, for the budget gate.

    Nothing is uploaded; ``error`` holds the build failure (invalid blocks, missing asset).
    """

    site: str
    version: int
    content_hash: str | None
    js_kb: int
    css_kb: int
    third_party_scripts: int
    error: str | None = None
    media: MediaWeight = field(default_factory=MediaWeight)


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything read from the world in one observation."""

    at: float
    projects: Mapping[str, ObservedProject] = field(default_factory=dict)  # by project name
    ledger: Mapping[str, SiteLedger] = field(default_factory=dict)  # by site
    hostnames: Mapping[str, ObservedHostname] = field(default_factory=dict)  # by hostname
    known_domains: frozenset[str] = frozenset()  # hostnames with a D1 ``domains`` row
    # ``domains`` rows (not ``deleted``) of hostnames the complete listing did not show.
    unlisted_domains: Mapping[str, DomainRecord] = field(default_factory=dict)
    tenants: Mapping[str, TenantRecord] = field(default_factory=dict)
    dunning: Mapping[tuple[str, str], DunningRecord] = field(default_factory=dict)
    billing: Mapping[str, CustomerBilling] = field(default_factory=dict)  # by customer
    billing_mirror: Mapping[str, str] = field(default_factory=dict)  # customer -> digest in D1
    builds: Mapping[tuple[str, int], BuildPreview] = field(default_factory=dict)
    # D1 ``sites`` rows of sites no spec declares (whole-fleet reads): site -> Pages project.
    unclaimed_projects: Mapping[str, str] = field(default_factory=dict)
    incomplete: Mapping[Source, Gap] = field(default_factory=dict)  # source -> why
    scope: frozenset[str] | None = None  # sites observed (PR mode); None = the whole fleet
    cname_target: str | None = None  # the SaaS target the DNS checks compared with, if known
    workers: Mapping[str, ObservedWorker] = field(default_factory=dict)  # by script name
    worker_rollouts: Mapping[str, WorkerRollout] = field(default_factory=dict)  # by script
    worker_scripts: frozenset[str] = frozenset()  # scripts looked up (found or not)
    routes: Mapping[str, RouteEntry] = field(default_factory=dict)  # hostname -> entry
    platform: ObservedPlatform | None = None
    # The builder's fingerprint (build/identity.py); "" when unknown, and then no build
    # identity is compared (a plan from core tests, or an observer that builds nothing).
    builder: str = ""

    def is_complete(self, source: Source) -> bool:
        """Whether ``source`` was read in full this time."""
        return source not in self.incomplete

    @property
    def unreadable(self) -> frozenset[Source]:
        """The sources whose reading errored or went unanswered (:attr:`Gap.unreadable`)."""
        return frozenset(s for s, gap in self.incomplete.items() if gap.unreadable)

    def failed(self) -> frozenset[Source]:
        """The sources whose reading went wrong (:attr:`Gap.failed`): the one rule for all."""
        return frozenset(s for s, gap in self.incomplete.items() if gap.failed)

    def digest(self) -> str:
        """A canonical hash of every observed fact except the observation time."""
        payload = {
            name: _keyed(getattr(self, name))
            for name in _field_names(self) or ()
            if name not in _UNDIGESTED and (name not in _DIGESTED_WHEN_SET or getattr(self, name))
        }
        # Digested as the words alone, as before gaps had a reason: saved digests still match.
        payload["incomplete"] = {s.value: g.detail for s, g in self.incomplete.items()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_default)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class ObservedDigest:
    """The digest of one observation (:meth:`Observed.digest`), hashed when first read.

    A plan carries one: a plan only acted on in memory (the daemon's passes, ``apply`` without
    ``--plan``) never hashes its 10,000-site observation; saving, printing or comparing a plan
    reads :attr:`value`, computed once. A saved plan's digest is known from its document.
    Equal when the values are; immutable once made (the value is a function of the frozen
    observation).
    """

    __slots__ = ("_of",)

    def __init__(self, of: Observed | str) -> None:
        self._of = of  # the observation until hashed, then its digest

    @property
    def value(self) -> str:
        """``sha256:<hex>`` of the observation, hashed on the first read."""
        if isinstance(self._of, Observed):
            self._of = self._of.digest()  # the plan need not keep the observation alive for it
        return self._of

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObservedDigest):
            return NotImplemented
        return self is other or self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        shown = self._of if isinstance(self._of, str) else "not yet hashed"
        return f"ObservedDigest({shown!r})"


_UNDIGESTED = frozenset({"at"})
# Facts added after digests were first saved: digested only when present, so the digest of a
# world without them (every saved plan, every golden file) is unchanged.
_DIGESTED_WHEN_SET = frozenset(
    {"unclaimed_projects", "workers", "worker_rollouts", "worker_scripts"}
)
_FIELDS: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _field_names(value: object) -> tuple[str, ...] | None:
    """The field names of a dataclass instance (cached per class), else None."""
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[cls] = tuple(f.name for f in fields(value))
    return names


def _keyed(value: object) -> object:
    """A mapping with every key made a string as :func:`_canonical` does; else ``value``."""
    if type(value) in _PLAIN:
        return value  # the common case, without an ABC isinstance check
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else json.dumps(_canonical(k))): v for k, v in value.items()
        }
    return value


def _json_default(value: object) -> object:
    """``json.dumps`` hook for what the C encoder cannot write itself.

    A dataclass becomes the list of its field values in declaration order (one C-level
    ``attrgetter`` call, no per-field Python work): the field order is fixed per class, so
    this is as canonical as a dict of the fields and much cheaper on a 10,000-site
    observation. Other mappings get string keys, sets are sorted, anything else is ``str``.
    """
    getter = _GETTERS.get(type(value))
    if getter is None:
        names = _field_names(value)
        if names:
            # One name gives the bare value, several a tuple: canonical either way, per class.
            getter = _GETTERS[type(value)] = attrgetter(*names)
    if getter is not None:
        return getter(value)
    if isinstance(value, Mapping):
        return _keyed(value)
    if isinstance(value, frozenset | set):
        return sorted((_canonical(v) for v in value), key=repr)
    return str(value)


_GETTERS: dict[type, Callable[[Any], Any]] = {}


def _canonical(value: object) -> object:
    """Plain JSON values with string keys and sorted sets, for hashing.

    Dataclasses become dicts of their fields, exactly as ``dataclasses.asdict`` would give
    them, but without its deep copies (the digest of a 10,000-site observation must be cheap).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _FIELDS.get(kind) or _field_names(value)
    if names is not None:
        return {name: _canonical(getattr(value, name)) for name in names}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else json.dumps(_canonical(k))): _canonical(v)
            for k, v in value.items()
        }
    if isinstance(value, frozenset | set):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return str(value)


def billing_digest(billing: CustomerBilling) -> str:
    """A short hash of a customer's Stripe facts, stored with the D1 mirror to detect drift.

    The text hashed is ``json.dumps`` of :func:`_canonical` of the facts (digests stored in D1
    must keep matching); :func:`_fields` gives the C encoder the same dicts one level at a
    time, so the planner's pass over every tenant stays cheap.
    """
    text = _BILLING_JSON.encode(billing)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fields(value: object) -> object:
    """``json.dumps`` hook: a dataclass as the dict of its fields, else :func:`_canonical`."""
    names = _field_names(value)
    if names is not None:
        return {name: getattr(value, name) for name in names}
    return _canonical(value)


_BILLING_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_fields)
