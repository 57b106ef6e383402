"""Build identity: one digest of everything that shapes a publish's output, and what changed.

Pure. The planner (``core/plan_sites.py``) computes the identity a build of a site's version
would have now and compares it with the one ``publish_versions`` recorded for the live publish;
the publisher (``runtime/actions/publish.py``) computes the same value for the build it makes,
tags the deployment with it and records it with its inputs. Nothing here reads anything.

The inputs (:class:`BuildInputs`):

- ``content``: the SHA-256 of the version's ``site_versions.content_json`` (the ``content_hash``
  column the editor writes). The snapshot lists every asset with its SHA-256, so a new photo
  behind the same key is a new content digest too;
- ``scripts``: the Site's ``spec.scripts``, in order (they are written into every page);
- ``site`` and ``version``: written into the pages' generator tag;
- ``builder``: the builder's own version and the image encoder settings
  (``build/media.py`` ``EncoderSettings.digest()``, which includes the Pillow version), as one
  fingerprint string from ``build/identity.py``.

Same inputs, same identity, so an unchanged site never rebuilds; any change plans a publish
whose reason says which input changed (:func:`describe_changes`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BuildInputs", "describe_changes", "inputs_from_json", "is_stale", "wanted_inputs"]


@dataclass(frozen=True, slots=True)
class BuildInputs:
    """The inputs of one build (see the module docstring)."""

    site: str
    version: int
    content: str  # sha256 hex of content_json
    scripts: tuple[str, ...]
    builder: str  # e.g. "sitebuilder-build/2 encoder/1a2b3c4d5e6f7a8b"

    @property
    def identity(self) -> str:
        """SHA-256 hex over the inputs as canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        """The canonical JSON recorded in ``publish_versions.build_inputs``."""
        return json.dumps(
            {
                "builder": self.builder,
                "content": self.content,
                "scripts": list(self.scripts),
                "site": self.site,
                "version": self.version,
            },
            sort_keys=True,
            separators=(",", ":"),
        )


def inputs_from_json(text: str | None) -> BuildInputs | None:
    """Parse what :meth:`BuildInputs.to_json` wrote; None for NULL or anything malformed."""
    if not text:
        return None
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, Mapping):
        return None
    site, version, content = data.get("site"), data.get("version"), data.get("content")
    scripts, builder = data.get("scripts"), data.get("builder")
    if (
        not isinstance(site, str)
        or not isinstance(version, int)
        or not isinstance(content, str)
        or not isinstance(builder, str)
        or not isinstance(scripts, list)
        or not all(isinstance(s, str) for s in scripts)
    ):
        return None
    return BuildInputs(
        site=site, version=version, content=content, scripts=tuple(scripts), builder=builder
    )


def wanted_inputs(
    site: str, version: int, content: str | None, scripts: tuple[str, ...], builder: str
) -> BuildInputs | None:
    """The inputs a build of ``version`` would have now; None when one of them is unknown."""
    if not builder or content is None:
        return None
    return BuildInputs(
        site=site, version=version, content=content, scripts=scripts, builder=builder
    )


def is_stale(
    recorded: str | None, wanted: BuildInputs | None, inputs: BuildInputs | None = None
) -> bool:
    """True when a recorded identity is known to differ from the one wanted now.

    A row without an identity (written before identities existed) or inputs not all known
    (no content digest, no builder fingerprint) are never stale: the version alone decides.
    ``inputs`` are the row's recorded inputs (``publish_versions.build_inputs``), written with
    its identity from the same value: when readable they are compared field by field, which
    gives the identity's answer without hashing (a plan asks once or twice per environment).
    """
    if recorded is None or wanted is None:
        return False
    if inputs is not None:
        return inputs != wanted
    return recorded != wanted.identity


def _short(digest: str) -> str:
    return digest[:12]


def describe_changes(old: BuildInputs, new: BuildInputs) -> tuple[str, ...]:
    """What differs between the inputs of the live build and of the build wanted now.

    Returns:
        One phrase per changed input, in a fixed order, e.g.
        ``("scripts changed: removed https://cdn.example/a.js",)``; empty when equal.
    """
    changes: list[str] = []
    if old.content != new.content:
        what = (
            f"content of version {new.version} edited in place"
            if old.version == new.version
            else "content changed"
        )
        changes.append(f"{what} (sha256 {_short(old.content)} -> {_short(new.content)})")
    if old.scripts != new.scripts:
        removed = [s for s in old.scripts if s not in new.scripts]
        added = [s for s in new.scripts if s not in old.scripts]
        parts = [f"removed {', '.join(removed)}"] if removed else []
        parts += [f"added {', '.join(added)}"] if added else []
        changes.append("scripts changed: " + ("; ".join(parts) if parts else "reordered"))
    if old.builder != new.builder:
        changes.append(f"builder changed ({old.builder} -> {new.builder})")
    if (old.site, old.version) != (new.site, new.version) and not changes:
        changes.append(f"site or version changed ({old.site} v{old.version})")
    return tuple(changes)
