"""Loading spec files safely: every kind of bad input gives a located problem, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.errors import LoadError
from reconciler.spec import yaml_plain
from reconciler.spec.load import Limits, load_directory, parse_documents
from reconciler.spec.models import Kind

from support.spec import only_problem, problems, site, write


def test_the_example_fleet_is_valid() -> None:
    specs = load_directory(Path(__file__).resolve().parents[2] / "specs")
    assert specs.summary() == "3 tenants, 2 policies, 5 sites, 8 domains"
    assert specs.revision is None
    assert list(specs.sites) == sorted(specs.sites)
    assert specs.tenants["bistro"].spec.access == "active"


def test_malformed_yaml_is_located(specs: Path) -> None:
    write(
        specs, "sites/broken.yaml", "apiVersion: sitebuilder/v1\nkind: Site\nmetadata: {name: x\n"
    )
    assert only_problem(specs).startswith(
        "specs/sites/broken.yaml:4:1: malformed YAML: did not find expected ',' or '}'"
    )


def test_bad_indentation_is_malformed_yaml(specs: Path) -> None:
    write(specs, "tenants/x.yaml", "kind: Tenant\n metadata: 1\nspec:\n")
    assert only_problem(specs).startswith("specs/tenants/x.yaml:2:10: malformed YAML: ")


def test_a_duplicate_key_is_an_error_not_a_silent_override(specs: Path) -> None:
    path = specs / "sites" / "acme-shop.yaml"
    path.write_text(path.read_text() + "  production: {version: 5}\n", encoding="utf-8")
    assert only_problem(specs) == (
        "specs/sites/acme-shop.yaml:14:3: Site/acme-shop: spec.production: duplicate key "
        "'production' (first defined on line 9); a key may appear once per mapping"
    )


def test_a_duplicate_key_does_not_hide_other_problems_in_the_document(specs: Path) -> None:
    write(
        specs,
        "sites/x.yaml",
        site("x", "x.example.com").replace("  name: x\n", "  name: x\n  name: y\n")
        + "  colour: blue\n",
    )
    found = problems(specs)
    assert [p.split(": ", 1)[0] for p in found] == [
        "specs/sites/x.yaml:5:3",
        "specs/sites/x.yaml:12:3",
    ]
    assert "duplicate key 'name'" in found[0]
    assert found[1].endswith("spec.colour: unknown field 'colour'")


def test_a_wrong_type_names_the_field_and_the_value(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com").replace("version: 1", "version: ten"))
    assert only_problem(specs) == (
        "specs/sites/x.yaml:8:16: Site/x: spec.production.version: input should be a valid "
        "integer, unable to parse string as an integer, got 'ten'"
    )


def test_a_version_below_one_is_rejected(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com").replace("version: 1", "version: 0"))
    assert only_problem(specs).endswith(
        "spec.production.version: input should be greater than or equal to 1, got 0"
    )


def test_a_mapping_where_a_list_belongs_is_a_wrong_type(specs: Path) -> None:
    text = site("x", "x.example.com").replace(
        "  domains:\n    - hostname: x.example.com\n", "  domains: {hostname: x.example.com}\n"
    )
    write(specs, "sites/x.yaml", text)
    assert only_problem(specs) == (
        "specs/sites/x.yaml:9:3: Site/x: spec.domains: input should be a valid tuple, got a mapping"
    )


def test_an_unknown_field_is_rejected_at_its_key(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com") + "      sll: {method: txt}\n")
    assert only_problem(specs) == (
        "specs/sites/x.yaml:11:7: Site/x: spec.domains[0].sll: unknown field 'sll'"
    )


def test_a_missing_field_is_reported_on_its_parent(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com").replace("  tenant: acme\n", ""))
    assert only_problem(specs) == (
        "specs/sites/x.yaml:5:1: Site/x: spec.tenant: missing required field 'tenant'"
    )


def test_an_unknown_kind_is_a_clear_error(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com").replace("kind: Site", "kind: Sites"))
    assert only_problem(specs) == (
        "specs/sites/x.yaml:2:1: kind: unknown kind 'Sites'; "
        "expected one of BillingPolicy, Site, Tenant, Worker"
    )


def test_a_wrong_api_version_is_a_clear_error(specs: Path) -> None:
    write(
        specs,
        "sites/x.yaml",
        site("x", "x.example.com").replace("sitebuilder/v1", "sitebuilder/v2"),
    )
    assert only_problem(specs) == (
        "specs/sites/x.yaml:1:1: Site/x: apiVersion: unsupported version 'sitebuilder/v2'; "
        "use sitebuilder/v1"
    )


def test_a_document_that_is_not_a_mapping_is_rejected(specs: Path) -> None:
    write(specs, "sites/x.yaml", "- just\n- a list\n")
    assert only_problem(specs) == (
        "specs/sites/x.yaml:1:1: a document must be a mapping with apiVersion, kind, metadata "
        "and spec, got a list"
    )


def test_an_invalid_hostname_is_placed_on_its_line(specs: Path) -> None:
    write(specs, "sites/x.yaml", site("x", "acme..com"))
    assert only_problem(specs) == (
        "specs/sites/x.yaml:10:7: Site/x: spec.domains[0].hostname: 'acme..com' is not a valid "
        "hostname (empty label)"
    )


def test_an_invalid_phone_number_is_rejected(specs: Path) -> None:
    path = specs / "tenants" / "acme.yaml"
    path.write_text(
        path.read_text().replace('"+5511912345678"', '"+5511012345678"'), encoding="utf-8"
    )
    assert only_problem(specs) == (
        "specs/tenants/acme.yaml:12:3: Tenant/acme: spec.whatsapp: '+5511012345678' is not a "
        "valid phone number"
    )


def test_a_phone_number_not_in_e164_form_is_rejected(specs: Path) -> None:
    path = specs / "tenants" / "acme.yaml"
    path.write_text(
        path.read_text().replace('"+5511912345678"', '"(11) 91234-5678"'), encoding="utf-8"
    )
    assert "is not an E.164 number" in only_problem(specs)


def test_a_billion_laughs_alias_bomb_fails_fast_with_a_location(specs: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
    write(specs, "bomb.yaml", "\n".join(lines) + "\n")
    assert only_problem(specs) == (
        "specs/bomb.yaml:6:8: alias *e makes the document expand to more than 100,000 values "
        "(an alias bomb?); aliases are bounded"
    )


def test_a_recursive_alias_is_rejected(specs: Path) -> None:
    write(specs, "loop.yaml", "a: &a\n  b: *a\n")
    assert only_problem(specs) == (
        "specs/loop.yaml:2:6: recursive alias *a: a value may not contain itself"
    )


def test_an_alias_without_an_anchor_is_rejected(specs: Path) -> None:
    write(specs, "x.yaml", "a: 1\nb: *nowhere\n")
    assert (
        only_problem(specs) == "specs/x.yaml:2:4: alias *nowhere has no anchor &nowhere before it"
    )


def test_a_list_as_a_mapping_key_is_rejected(specs: Path) -> None:
    write(specs, "x.yaml", "? [a, b]\n: 1\n")
    assert only_problem(specs) == (
        "specs/x.yaml:1:3: mapping keys must be plain scalars, not lists or maps"
    )


def test_modest_aliases_are_expanded(specs: Path) -> None:
    text = site("x", "x.example.com").replace(
        "production: {version: 1}", "production: &v {version: 1}"
    )
    write(specs, "sites/x.yaml", text + "  preview: *v\n")
    assert load_directory(specs).sites["x"].spec.preview is not None


def test_merge_keys_are_not_supported(specs: Path) -> None:
    text = site("x", "x.example.com").replace(
        "production: {version: 1}", "production: {<<: {version: 1}}"
    )
    write(specs, "sites/x.yaml", text)
    assert only_problem(specs).startswith("specs/sites/x.yaml:8:16: merge keys (<<)")


def test_an_empty_file_is_an_error(specs: Path) -> None:
    write(specs, "sites/empty.yaml", "")
    assert only_problem(specs) == (
        "specs/sites/empty.yaml:1:1: file is empty; a spec file holds at least one document"
    )


def test_a_file_with_only_comments_is_an_error(specs: Path) -> None:
    write(specs, "sites/notes.yaml", "# nothing here yet\n")
    assert only_problem(specs) == (
        "specs/sites/notes.yaml:1:1: file holds no documents (only comments)"
    )


def test_a_binary_file_is_rejected(specs: Path) -> None:
    write(specs, "sites/logo.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert only_problem(specs) == (
        "specs/sites/logo.yaml: binary file (contains NUL bytes); spec files must be UTF-8 "
        "YAML text"
    )


def test_a_file_that_is_not_utf8_is_located_at_the_bad_byte(specs: Path) -> None:
    write(
        specs, "tenants/x.yaml", "kind: Tenant\nspec:\n  display_name: Caf\xe9\n".encode("latin-1")
    )
    assert only_problem(specs) == (
        "specs/tenants/x.yaml:3:20: not UTF-8: byte 0xe9 cannot be decoded; save as UTF-8"
    )


def test_a_utf16_file_is_rejected(specs: Path) -> None:
    write(specs, "tenants/x.yaml", "kind: Tenant\n".encode("utf-16"))
    assert (
        only_problem(specs) == "specs/tenants/x.yaml:1:1: file is UTF-16; spec files must be UTF-8"
    )


def test_a_file_over_the_size_limit_is_rejected_without_parsing(specs: Path) -> None:
    write(specs, "sites/big.yaml", "# " + "x" * 5000 + "\n")
    assert only_problem(specs, Limits(max_file_bytes=4096)) == (
        "specs/sites/big.yaml: file is larger than the limit of 4,096 bytes per file"
    )


def test_python_tags_are_refused(specs: Path) -> None:
    write(specs, "evil.yaml", "!!python/object/apply:os.system ['true']\n")
    assert only_problem(specs).startswith(
        "specs/evil.yaml:1:1: tag '!!python/object/apply:os.system' is not allowed"
    )


def test_control_characters_are_malformed_yaml(specs: Path) -> None:
    write(specs, "x.yaml", "a: 1\nb: \x07\n")
    assert only_problem(specs).startswith(
        "specs/x.yaml:2:4: malformed YAML: control character #x0007 is not allowed"
    )


def test_scalars_resolve_as_in_yaml_1_2_so_yes_no_and_dates_stay_strings() -> None:
    text = "a: yes\nb: no\nc: on\nd: 2024-01-01\ne: 1:30\nf: true\ng: ~\nh: 0x1f\ni: 1.5\nj: '12'\n"
    (document,) = parse_documents("f.yaml", text.encode()).documents
    assert document.data == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "2024-01-01",
        "e": "1:30",
        "f": True,
        "g": None,
        "h": 31,
        "i": 1.5,
        "j": "12",
    }


def test_a_file_may_hold_several_documents_and_empty_ones_are_skipped(specs: Path) -> None:
    write(
        specs,
        "sites/more.yaml",
        "---\n" + site("x", "x.example.com") + "---\n" + site("y", "y.example.com") + "---\n",
    )
    loaded = load_directory(specs)
    assert {"x", "y"} <= set(loaded.sites)
    assert loaded.location(Kind.SITE, "y", "spec.domains[0].hostname").line == 22


def test_files_that_are_not_yaml_are_ignored(specs: Path) -> None:
    write(specs, "README.md", "# not a spec: [\n")
    write(specs, "sites/.hidden.yaml", "broken: [\n")
    write(specs, ".git/x.yaml", "broken: [\n")
    assert load_directory(specs).summary() == "3 tenants, 2 policies, 5 sites, 8 domains"


def test_yml_files_are_read_too(specs: Path) -> None:
    write(specs, "sites/x.yml", site("x", "x.example.com"))
    assert "x" in load_directory(specs).sites


def test_every_problem_in_every_file_is_reported_at_once_and_sorted(specs: Path) -> None:
    write(specs, "b.yaml", "")
    write(specs, "a.yaml", "x: [\n")
    write(specs, "sites/x.yaml", site("x", "acme..com", tenant="nobody"))
    found = problems(specs)
    assert [line.split(":", 1)[0] for line in found] == [
        "specs/a.yaml",
        "specs/b.yaml",
        "specs/sites/x.yaml",
    ]


def test_location_falls_back_to_the_nearest_parent_then_the_document() -> None:
    specs = load_directory(Path(__file__).resolve().parents[2] / "specs")
    hostname = specs.location(Kind.SITE, "bistro-menu", "spec.domains[2].hostname")
    assert (hostname.path, hostname.line, hostname.column) == (
        "specs/sites/bistro-menu.yaml",
        15,
        7,
    )
    ssl_method = specs.location(Kind.SITE, "bistro-menu", "spec.domains[2].ssl.method")
    assert (ssl_method.line, ssl_method.column) == (16, 13)
    missing = specs.location(Kind.SITE, "acme-shop", "spec.preview.version")
    assert (missing.line, missing.column) == (6, 1)
    document = specs.location(Kind.SITE, "lumen-blog")
    assert (document.path, document.line, document.column) == ("specs/sites/lumen.yaml", 16, 1)
    assert str(document) == "specs/sites/lumen.yaml:16:1"


def test_a_missing_directory_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="is not a directory of specs"):
        load_directory(tmp_path / "nope")


def test_parse_documents_returns_positions_for_every_field() -> None:
    parsed = parse_documents("f.yaml", b"a:\n  - b: 1\n    c: [x, y]\n")
    assert parsed.problems == []
    (document,) = parsed.documents
    assert document.data == {"a": [{"b": 1, "c": ["x", "y"]}]}
    assert str(document.locate("a[0].c[1]")) == "f.yaml:3:12"
    assert str(document.locate("a[0].b")) == "f.yaml:2:5"


def test_the_pure_python_parser_gives_the_same_problems(
    specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(specs, "sites/x.yaml", site("x", "acme..com") + "  production: {version: 2}\n")
    write(specs, "bad.yaml", "a: 1\nb: \x07\n")
    write(specs, "broken.yaml", "kind: [\n")

    def without_syntax_wording(found: list[str]) -> list[str]:
        # libyaml and PyYAML word syntax errors differently; positions must agree.
        return [line.split(" malformed YAML: ")[0] for line in found]

    with_c = problems(specs)
    monkeypatch.setattr(yaml_plain, "PARSER", yaml.SafeLoader)
    assert without_syntax_wording(problems(specs)) == without_syntax_wording(with_c)
    assert len(with_c) == 4
