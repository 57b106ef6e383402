"""Export the spec kinds (and the content snapshot) as JSON Schema files for ``schemas/``.

Called by ``commands/schemas.py`` (``make schemas``) and by ``tests/test_schemas_current.py``,
which fails when the committed files differ from what the models produce. Reads the pydantic
models of ``spec/models.py`` and, lazily, ``build/content.py``'s ``ContentSnapshot``. The
schemas serve editors (yaml-language-server modelines in ``specs/``) and PR linters; pydantic
stays the judge, so rules JSON Schema cannot express (references, uniqueness) live in code.

Output is deterministic: sorted keys, two-space indent, UTF-8, one trailing newline.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reconciler.spec.models import MODEL_BY_KIND, Kind

__all__ = ["JSON_SCHEMA_DIALECT", "generate_schemas", "render_schema", "write_schemas"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_KIND_DESCRIPTIONS = {
    Kind.TENANT: "A paying customer of the site builder: billing identity, contact, policy "
    "and access.",
    Kind.SITE: "A customer site: its Cloudflare Pages project, live content versions and "
    "custom domains.",
    Kind.BILLING_POLICY: "Billing rules shared by tenants: grace and lock days, dunning "
    "schedule, message templates, performance budget and domain timing.",
    Kind.WORKER: "One of the platform's own Workers (the API Worker): which version serves "
    "production, an optional gradual split, and the health check a rollout must pass.",
}


def _schema_of(model: type[BaseModel], *, title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["title"] = title
    schema["description"] = description
    return schema


def _content_schema() -> dict[str, Any]:
    # Imported lazily: the build package is heavier and unrelated to loading specs.
    content = importlib.import_module("reconciler.build.content")
    snapshot: type[BaseModel] = content.ContentSnapshot
    return _schema_of(
        snapshot,
        title="ContentSnapshot",
        description="A site version's content (D1 site_versions.content_json): pages made of "
        "an ordered list of typed blocks.",
    )


def generate_schemas() -> dict[str, dict[str, Any]]:
    """Return every schema by file name (``site.schema.json`` ...), in a stable order."""
    schemas: dict[str, dict[str, Any]] = {}
    for kind, model in sorted(MODEL_BY_KIND.items()):
        schemas[f"{kind.value.lower()}.schema.json"] = _schema_of(
            model, title=kind.value, description=_KIND_DESCRIPTIONS[kind]
        )
    schemas["content.schema.json"] = _content_schema()
    return dict(sorted(schemas.items()))


def render_schema(schema: dict[str, Any]) -> str:
    """Serialise a schema deterministically (sorted keys, trailing newline)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(out: Path) -> list[tuple[Path, bool]]:
    """Write every schema into ``out``; return each path and whether it changed."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, bool]] = []
    for name, schema in generate_schemas().items():
        target = out / name
        text = render_schema(schema)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            target.write_text(text, encoding="utf-8")
        written.append((target, current != text))
    return written
