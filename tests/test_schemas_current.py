"""The committed JSON Schemas in schemas/ match what the models generate now."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from reconciler.spec.schema import generate_schemas, render_schema

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_committed_schemas_are_current() -> None:
    stale = []
    for name, schema in generate_schemas().items():
        path = REPO_ROOT / "schemas" / name
        if not path.exists() or path.read_text(encoding="utf-8") != render_schema(schema):
            stale.append(name)
    assert not stale, f"schemas/ is stale ({', '.join(stale)}): run `make schemas` and commit"


def test_no_unexpected_files_in_schemas() -> None:
    expected = set(generate_schemas())
    present = {path.name for path in (REPO_ROOT / "schemas").glob("*.json")}
    assert present <= expected, f"remove {sorted(present - expected)} or run `make schemas`"


def test_every_example_spec_points_at_its_schema_and_validates_against_it() -> None:
    files = sorted((REPO_ROOT / "specs").rglob("*.yaml"))
    assert files
    for path in files:
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        prefix = "# yaml-language-server: $schema="
        assert first_line.startswith(prefix), f"{path} lacks the yaml-language-server modeline"
        schema_path = (path.parent / first_line[len(prefix) :]).resolve()
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert schema_path.name == f"{document['kind'].lower()}.schema.json"
            errors = [error.message for error in validator.iter_errors(document)]
            assert not errors, f"{path}: {errors}"


def test_the_schemas_reject_an_unknown_field() -> None:
    schema = json.loads((REPO_ROOT / "schemas" / "site.schema.json").read_text(encoding="utf-8"))
    document = yaml.safe_load((REPO_ROOT / "specs" / "sites" / "acme-shop.yaml").read_text())
    document["spec"]["colour"] = "blue"
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document))
