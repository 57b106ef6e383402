"""Typed values the Cloudflare adapter returns, and how the reconciler tags what it owns.

Who calls it: :mod:`reconciler.providers.cloudflare` parses API results into these frozen
dataclasses (``from_json``); observers and executors read them. Nothing here does I/O.
Shapes follow ``contracts/cloudflare/CONTRACT.md`` §3.2 (Deployment, Stage), §3.5 (Project)
and §4.3 (CustomHostname); only the fields the reconciler needs are kept, each typed.

Ownership of custom hostnames
    A custom hostname we create carries ``custom_metadata`` (an object of string values,
    CONTRACT.md §4.3)::

        {"managed-by": "sitebuilder-reconciler", "site": "<Site name>", "tenant": "<Tenant name>"}

    :func:`ownership_metadata` builds it and :func:`owner_of` reads it back. Only hostnames
    whose ``managed-by`` equals :data:`MANAGED_BY` are ever deleted or adopted after a
    duplicate (1406). The marker is three short ASCII values (well under a kilobyte), because the
    metadata is also exposed to Workers and rule expressions (``cf.hostname.metadata``) and the
    contract gives no size limit. Cloudflare's docs say custom metadata must be enabled for the
    SaaS zone by the account team; docs/cloudflare.md describes the fallback when it is not.

Tags of Pages deployments (Direct Upload, CONTRACT.md §3.4)
    The multipart form's ``deployment_trigger.metadata`` fields carry the tag:

    - ``branch``: the project's production branch for a production publish, any other branch
      name for a preview (Pages derives ``environment`` from it);
    - ``commit_hash``: the Git commit of the specs that asked for this version (may be empty);
    - ``commit_message``: one line of space-separated ``key=value`` tokens after a fixed
      prefix, values without spaces::

        sitebuilder-reconciler: site=acme-home version=12 publish=5f0c2d9e81aa build=41d07a9c3be2

      ``publish`` is a fresh random id per publish attempt, so the adapter can recognise *its*
      deployment after a create whose answer was lost; ``content`` (optional) is the first 12
      hex digits of the build's content hash; ``build`` (optional) the first 12 of its build
      identity (``core/identity.py``: content snapshot, scripts, builder and encoder).

    :meth:`DeploymentTag.commit_message` writes it; :attr:`Deployment.tag` parses it back
    (None for deployments the reconciler did not make).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_KEY",
    "TAG_PREFIX",
    "CustomHostname",
    "Deployment",
    "DeploymentState",
    "DeploymentTag",
    "OwnershipMarker",
    "PagesProject",
    "Stage",
    "ValidationRecord",
    "new_publish_id",
    "owner_of",
    "ownership_metadata",
]

MANAGED_BY_KEY = "managed-by"
MANAGED_BY = "sitebuilder-reconciler"
TAG_PREFIX = "sitebuilder-reconciler:"
_TOKEN = re.compile(r"^[A-Za-z0-9._/-]+$")

# The Deployment fields read as plain strings from the top level of the object.
_DEPLOYMENT_TEXTS = (
    "id",
    "short_id",
    "project_name",
    "environment",
    "url",
    "created_on",
    "modified_on",
)

DeploymentState = Literal["live", "failed", "canceled", "skipped", "in_progress"]


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _texts(data: Mapping[str, Any], *keys: str) -> dict[str, str]:
    """The string fields ``keys`` of ``data``, each ``""`` when absent or not a string."""
    return {key: _str(data.get(key)) for key in keys}


def _opt_texts(data: Mapping[str, Any], *keys: str) -> dict[str, str | None]:
    """The optional string fields ``keys`` of ``data``, each None when absent."""
    return {key: _opt_str(data.get(key)) for key in keys}


# --------------------------------------------------------------------------- ownership


@dataclass(frozen=True, slots=True)
class OwnershipMarker:
    """Which site and tenant a managed custom hostname belongs to."""

    site: str
    tenant: str


def ownership_metadata(
    *, site: str, tenant: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The ``custom_metadata`` of a hostname the reconciler creates.

    Args:
        site: the Site spec's name.
        tenant: the Tenant spec's name.
        extra: more string entries (they cannot override the marker keys).

    Returns:
        ``{"managed-by": "sitebuilder-reconciler", "site": site, "tenant": tenant, ...}``.
    """
    metadata = dict(extra or {})
    metadata.update({MANAGED_BY_KEY: MANAGED_BY, "site": site, "tenant": tenant})
    return metadata


def owner_of(metadata: Mapping[str, str] | None) -> OwnershipMarker | None:
    """Read the ownership marker back; None when the hostname is not ours."""
    if not metadata or metadata.get(MANAGED_BY_KEY) != MANAGED_BY:
        return None
    return OwnershipMarker(site=metadata.get("site", ""), tenant=metadata.get("tenant", ""))


# --------------------------------------------------------------------------- deployment tags


def new_publish_id() -> str:
    """A fresh random publish id (12 hex digits) for :class:`DeploymentTag`."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class DeploymentTag:
    """What a deployment the reconciler made carries: site, version, spec commit, publish id."""

    site: str
    version: int
    publish: str
    commit: str = ""
    branch: str = ""
    content: str = ""
    build: str = ""  # the build identity (core/identity.py); 12 hex digits go in the message

    def commit_message(self) -> str:
        """The one-line ``commit_message`` form field (see the module docstring).

        Raises:
            ValueError: when a value is empty where required or contains spaces.
        """
        tokens = [("site", self.site), ("version", str(self.version)), ("publish", self.publish)]
        if self.content:
            tokens.append(("content", self.content[:12]))
        if self.build:
            tokens.append(("build", self.build[:12]))
        for key, value in tokens:
            if not _TOKEN.match(value):
                raise ValueError(f"deployment tag {key}={value!r} must be a non-empty token")
        return TAG_PREFIX + " " + " ".join(f"{k}={v}" for k, v in tokens)

    @classmethod
    def parse(
        cls, commit_message: str, *, commit_hash: str = "", branch: str = ""
    ) -> DeploymentTag | None:
        """Parse a ``commit_message`` written by :meth:`commit_message`; None otherwise."""
        text = commit_message.strip()
        if not text.startswith(TAG_PREFIX):
            return None
        fields: dict[str, str] = {}
        for token in text[len(TAG_PREFIX) :].split():
            key, sep, value = token.partition("=")
            if not sep or not value:
                return None
            fields[key] = value
        site, version, publish = fields.get("site"), fields.get("version"), fields.get("publish")
        if not site or not publish or version is None or not version.isdigit():
            return None
        return cls(
            site=site,
            version=int(version),
            publish=publish,
            commit=commit_hash,
            branch=branch,
            content=fields.get("content", ""),
            build=fields.get("build", ""),
        )


# --------------------------------------------------------------------------- Pages


@dataclass(frozen=True, slots=True)
class Stage:
    """One deployment stage (CONTRACT.md §3.2): name, status and times (ISO strings)."""

    name: str
    status: str
    started_on: str | None = None
    ended_on: str | None = None

    @classmethod
    def from_json(cls, item: Any) -> Stage:
        """Build from a decoded stage object."""
        data = _dict(item)
        return cls(
            **_texts(data, "name", "status"),
            started_on=_opt_str(data.get("started_on")),
            ended_on=_opt_str(data.get("ended_on")),
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """A Pages deployment (CONTRACT.md §3.2) with its trigger metadata flattened."""

    id: str
    short_id: str
    project_name: str
    environment: str
    url: str
    created_on: str
    modified_on: str
    latest_stage: Stage | None
    stages: tuple[Stage, ...]
    trigger_type: str
    branch: str
    commit_hash: str
    commit_message: str
    commit_dirty: bool | None
    aliases: tuple[str, ...]
    is_skipped: bool

    @classmethod
    def from_json(cls, item: Any) -> Deployment:
        """Build from a decoded Deployment object; absent fields become empty values."""
        data = _dict(item)
        trigger = _dict(data.get("deployment_trigger"))
        metadata = _dict(trigger.get("metadata"))
        latest = data.get("latest_stage")
        dirty = metadata.get("commit_dirty")
        return cls(
            **_texts(data, *_DEPLOYMENT_TEXTS),
            latest_stage=Stage.from_json(latest) if isinstance(latest, dict) else None,
            stages=tuple(
                Stage.from_json(s) for s in data.get("stages") or () if isinstance(s, dict)
            ),
            trigger_type=_str(trigger.get("type")),
            **_texts(metadata, "branch", "commit_hash", "commit_message"),
            commit_dirty=dirty if isinstance(dirty, bool) else None,
            aliases=_strings(data.get("aliases")),
            is_skipped=data.get("is_skipped") is True,
        )

    @property
    def tag(self) -> DeploymentTag | None:
        """The reconciler's tag, parsed from the trigger metadata; None if not ours."""
        return DeploymentTag.parse(
            self.commit_message, commit_hash=self.commit_hash, branch=self.branch
        )

    @property
    def state(self) -> DeploymentState:
        """Progress per CONTRACT.md §3.3 (inferred rules, applied in this order).

        ``failed`` if any stage failed, ``canceled`` if any was canceled, ``skipped`` when
        ``is_skipped``, ``live`` when the latest stage is ``deploy`` with ``success``, else
        ``in_progress``.
        """
        statuses = {stage.status for stage in self.stages}
        if self.latest_stage is not None:
            statuses.add(self.latest_stage.status)
        if "failure" in statuses:
            return "failed"
        if "canceled" in statuses:
            return "canceled"
        if self.is_skipped:
            return "skipped"
        latest = self.latest_stage
        if latest is not None and latest.name == "deploy" and latest.status == "success":
            return "live"
        return "in_progress"

    @property
    def failed_stage(self) -> Stage | None:
        """The first stage that failed or was canceled, if any."""
        for stage in self.stages:
            if stage.status in ("failure", "canceled"):
                return stage
        return None


@dataclass(frozen=True, slots=True)
class PagesProject:
    """A Pages project (CONTRACT.md §3.5): identity and the deployments it points at."""

    id: str
    name: str
    subdomain: str
    production_branch: str
    domains: tuple[str, ...]
    created_on: str
    canonical_deployment: Deployment | None
    latest_deployment: Deployment | None

    @classmethod
    def from_json(cls, item: Any) -> PagesProject:
        """Build from a decoded Project object."""
        data = _dict(item)
        canonical = data.get("canonical_deployment")
        latest = data.get("latest_deployment")
        return cls(
            **_texts(data, "id", "name", "subdomain", "production_branch", "created_on"),
            domains=_strings(data.get("domains")),
            canonical_deployment=(
                Deployment.from_json(canonical) if isinstance(canonical, dict) else None
            ),
            latest_deployment=Deployment.from_json(latest) if isinstance(latest, dict) else None,
        )


# --------------------------------------------------------------------------- custom hostnames


@dataclass(frozen=True, slots=True)
class ValidationRecord:
    """One certificate validation record (``ssl.validation_records[]``, CONTRACT.md §4.3)."""

    txt_name: str | None = None
    txt_value: str | None = None
    http_url: str | None = None
    http_body: str | None = None
    emails: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, item: Any) -> ValidationRecord:
        """Build from a decoded validation record."""
        data = _dict(item)
        return cls(
            **_opt_texts(data, "txt_name", "txt_value", "http_url", "http_body"),
            emails=_strings(data.get("emails")),
        )


@dataclass(frozen=True, slots=True)
class CustomHostname:
    """A Cloudflare for SaaS custom hostname (CONTRACT.md §4.3-4.5)."""

    id: str
    hostname: str
    status: str
    ssl_status: str
    ssl_method: str
    ssl_type: str
    ssl_wildcard: bool
    verification_errors: tuple[str, ...]
    ssl_validation_errors: tuple[str, ...]
    validation_records: tuple[ValidationRecord, ...]
    ownership_txt_name: str | None
    ownership_txt_value: str | None
    custom_origin_server: str | None
    custom_origin_sni: str | None
    custom_metadata: Mapping[str, str]
    created_at: str

    @classmethod
    def from_json(cls, item: Any) -> CustomHostname:
        """Build from a decoded CustomHostname object."""
        data = _dict(item)
        ssl = _dict(data.get("ssl"))
        ownership = _dict(data.get("ownership_verification"))
        metadata = _dict(data.get("custom_metadata"))
        return cls(
            **_texts(data, "id", "hostname", "status", "created_at"),
            ssl_status=_str(ssl.get("status")),
            ssl_method=_str(ssl.get("method")),
            ssl_type=_str(ssl.get("type"), "dv"),
            ssl_wildcard=ssl.get("wildcard") is True,
            verification_errors=_strings(data.get("verification_errors")),
            ssl_validation_errors=tuple(
                _str(_dict(e).get("message")) for e in ssl.get("validation_errors") or ()
            ),
            validation_records=tuple(
                ValidationRecord.from_json(r) for r in ssl.get("validation_records") or ()
            ),
            ownership_txt_name=_opt_str(ownership.get("name")),
            ownership_txt_value=_opt_str(ownership.get("value")),
            custom_origin_server=_opt_str(data.get("custom_origin_server")),
            custom_origin_sni=_opt_str(data.get("custom_origin_sni")),
            custom_metadata={k: v for k, v in metadata.items() if isinstance(v, str)},
        )

    @property
    def dcv_txt(self) -> ValidationRecord | None:
        """The certificate's DCV TXT record (the first validation record with a TXT value)."""
        return next((r for r in self.validation_records if r.txt_name and r.txt_value), None)

    @property
    def owner(self) -> OwnershipMarker | None:
        """The ownership marker in ``custom_metadata``; None when the hostname is not ours."""
        return owner_of(self.custom_metadata)

    @property
    def is_active(self) -> bool:
        """Serving traffic: ``status`` and ``ssl.status`` both ``active`` (CONTRACT.md §4.3)."""
        return self.status == "active" and self.ssl_status == "active"
